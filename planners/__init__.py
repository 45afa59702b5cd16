"""dwellwise.planners"""
