"""dwellwise.benchmarks"""
