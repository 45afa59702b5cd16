"""dwellwise.simulators"""
