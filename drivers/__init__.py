"""dwellwise.drivers"""
