"""dwellwise.models"""
