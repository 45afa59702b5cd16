"""dwellwise: adaptive-dwell MA-XRF scanning of paintings."""

__version__ = "0.1.0"
