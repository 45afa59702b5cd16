"""dwellwise.planners: dwell policies, the allocation entry point, the time model and budget
governor, and the Bluesky plans (``raster_scan``, ``adaptive_scan``).

Importing this package registers every dwell policy. ``paper-unet`` and ``n2v-sqrt`` live in
optional modules; they register when their modules are present.
"""

import importlib

from dwellwise.planners.allocate import allocate_dwell
from dwellwise.planners.plans import adaptive_scan, budget_raster_scan, raster_scan
from dwellwise.planners.policies import (
    auto,
    bilevel,
    blindspot_sqrt,
    list_policies,
    oracle,
    uniform,
)
from dwellwise.planners.request import ScanRefused
from dwellwise.planners.waterfill import waterfill_sqrt

_OPTIONAL_POLICIES = ("paper_unet", "n2v_sqrt")

for _name in _OPTIONAL_POLICIES:
    _module = f"{__name__}.policies.{_name}"
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:  # only a missing module file is optional
        if exc.name != _module:
            raise

__all__ = [
    "adaptive_scan",
    "allocate_dwell",
    "budget_raster_scan",
    "raster_scan",
    "ScanRefused",
    "list_policies",
    "waterfill_sqrt",
    "auto",
    "bilevel",
    "blindspot_sqrt",
    "oracle",
    "uniform",
]
