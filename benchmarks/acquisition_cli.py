"""``dwellwise bench acquisition``: hard time budget, fly-scan overhead and the science gain of
adaptive scans on the simulated beamline, recorded in ``benchmarks/RESULTS.md``.

Full run: 200 randomized budget scans and 9 scenes × 3 methods at 32×32 (speedup 2) in two worker processes
(torch limited to one thread each), plus one 32×32 overhead measurement at speedup 1 (under 10
minutes on 2 cores). ``quick``: a few tiny scans of each kind (under a minute), printed but not
recorded.
"""

from __future__ import annotations

import time

from dwellwise.benchmarks.acquisition import (
    budget_tables,
    overhead_table,
    run_budget_benchmark,
    run_overhead_benchmark,
    run_science_benchmark,
    science_tables,
    worker_pool,
)
from dwellwise.benchmarks.results import record_section

WORKERS = 2
FULL = {
    "budget_scans": 200,
    "overhead_shape": (32, 32),
    "science_shape": (32, 32),
    "science_scenes": (
        ("astronaut", 0),
        ("coffee", 0),
        ("chelsea", 0),
        ("rocket", 0),
        ("colorwheel", 0),
        ("immunohistochemistry", 0),
        ("procedural", 101),
        ("procedural", 102),
        ("procedural", 103),
    ),
}
QUICK = {
    "budget_scans": 6,
    "budget_max_side": 12,
    "overhead_shape": (8, 8),
    "science_shape": (24, 24),
    "science_scenes": (("astronaut", 0), ("procedural", 101)),
    "science": {"budget_per_pixel": 0.100, "speedup": 20.0},
}
SCIENCE = {"budget_per_pixel": 0.060, "t0": 0.005, "passes": 2, "speedup": 2.0, "pixel_size": 0.5}
"""Speedup 2: the simulated clock multiplies software time too, and at 20 the extra rows of a
second pass cost ~10 % of the budget in magnified software time alone (a real scan: < 1 %)."""


def main(quick: bool = False) -> int:
    cfg = QUICK if quick else FULL
    started = time.perf_counter()

    # overhead first, alone: it times a speedup-1 scan against the time model
    overhead = run_overhead_benchmark(shape=cfg["overhead_shape"])
    body = overhead_table(overhead)
    print("## Fly-scan overhead\n\n" + body + "\n", flush=True)
    if not quick:
        record_section(
            "acquisition-overhead",
            "## Fly-scan overhead (`dwellwise bench acquisition`)\n\n" + body,
        )

    pool = worker_pool(WORKERS)
    try:
        budget_rows = run_budget_benchmark(
            cfg["budget_scans"], seed=0, max_side=cfg.get("budget_max_side", 32), pool=pool
        )
        science = {**SCIENCE, **cfg.get("science", {})}
        science_rows = run_science_benchmark(
            cfg["science_scenes"], cfg["science_shape"], pool=pool, **science
        )
    finally:
        pool.close()
        pool.join()
    body = budget_tables(budget_rows)
    intro = (
        f"{len(budget_rows)} randomized scans on the simulated beamline (seed 0): `adaptive_scan` "
        "with 2 or 3 passes, and for 1 pass `budget_raster_scan` (the one-pass plan that fills its "
        "budget; an `adaptive_scan` with passes=1 flies only its t0 pass by design); "
        "shapes 6..32 px per side (non-square), pitch 0.25..1 mm, t0 = 1..3 × pitch / v_max, "
        "budget = U(1.05, 3) × the smallest budget the plan accepts, policies "
        "uniform / bilevel / blindspot-sqrt / auto / stall-test (sleeps past its deadline), "
        "1..3 passes, speedup 20..60; stage faults (StageFaults) in 60 % of scans: 1-3 rows "
        "flown 1.5-4× slower, 1-2 stalls of 1-5 % of the budget before a row. Used time = wall "
        "time of `RE(plan)` × speedup. Pass-1 file check: every pass-1 row is complete in the "
        "cube file and `/entry/scan_status` is `completed`, unless the budget ended pass 1 (then exactly "
        "the rows the plan reported, and `truncated`).\n\n"
    )
    print("## Time budget\n\n" + intro + body + "\n", flush=True)
    if not quick:
        record_section(
            "acquisition-budget",
            "## Hard time budget (`dwellwise bench acquisition`)\n\n" + intro + body,
        )

    shape = cfg["science_shape"]
    body = science_tables(science_rows)
    budget = science["budget_per_pixel"] * shape[0] * shape[1]
    intro = (
        f"{shape[0]}×{shape[1]} px, pitch {science['pixel_size']} mm, speedup {science['speedup']:g}, "
        f"budget {budget:.4g} s ({science['budget_per_pixel'] * 1e3:g} ms per pixel of total time: "
        "motion, software and compute included) for every method. `raster` = `budget_raster_scan` "
        "(one uniform pass, the largest dwell that fits); `auto` and `blindspot-sqrt` = "
        f"`adaptive_scan` with t0 = {science['t0'] * 1e3:g} ms and {science['passes']} passes. "
        "Estimate per pixel = ROI counts of the summed spectra / summed live time; RMSE against "
        "`/entry/truth/roi_rates`. Held out = not used by `bench dwell` during development.\n\n"
    )
    print("## Science end to end\n\n" + intro + body + "\n", flush=True)
    if not quick:
        record_section(
            "acquisition-science",
            "## Adaptive versus raster at equal budget (`dwellwise bench acquisition`)\n\n"
            + intro
            + body,
        )
    print(f"acquisition benchmark: {time.perf_counter() - started:.0f} s", flush=True)
    return 0
