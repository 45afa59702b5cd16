"""dwellwise.daemon"""
