"""Acquisition benchmarks: the hard time budget, the fly-scan overhead, and the science gain.

Three measurements on the simulated beamline (:func:`dwellwise.drivers.sim.sim_beamline`), each
with a plain ``bluesky.RunEngine``:

* **Budget** (:func:`run_budget_benchmark`): randomized adaptive scans (shape, pitch, t0, budget,
  policy, passes, speedup, injected slow rows, stage stalls and compute stalls). A scan's used
  time is the wall time of ``RE(plan)`` times the speedup; it must never exceed the budget.
* **Overhead** (:func:`run_overhead_benchmark`): at speedup 1, one ``raster_scan`` pass against
  the time model's prediction, and the same devices under Bluesky's step-mode ``grid_scan``.
* **Science**: at equal budget, ``adaptive_scan`` against ``budget_raster_scan``, in
  :mod:`dwellwise.benchmarks.acquisition_science`.

Scans run in worker processes (``spawn``), each building its own beamline and RunEngine.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

STALL_POLICY = "stall-test"
"""Benchmark-only dwell policy that sleeps past its deadline (a compute stall)."""
BUDGET_POLICIES = ("uniform", "bilevel", "blindspot-sqrt", "auto", STALL_POLICY)
RASTER = "budget_raster_scan"
"""Label of the one-pass budget scans (no policy)."""
FAULT_KINDS = ("none", "slow rows", "stage stall", "slow rows + stage stall")
FAULT_PROBS = (0.4, 0.2, 0.2, 0.2)
BUDGET_COLUMNS = [
    "scans",
    "overruns",
    "median used/budget",
    "p5 used/budget",
    "max used/budget",
    "least margin (s)",
    "pass 1 cut by budget",
    "pass-1 file check failures",
    "errors",
]
_MIN_BUDGET = re.compile(r"smallest budget that fits is ([0-9.]+(?:[eE][-+]?[0-9]+)?) s")

# -- helpers shared by every benchmark -------------------------------------------------------------


def ensure_stall_policy() -> None:
    """Register :data:`STALL_POLICY`: it sleeps 1.5 × its deadline + 50 ms, then answers uniform."""
    from dwellwise.planners.policies import is_registered, register

    if is_registered(STALL_POLICY):
        return

    @register(STALL_POLICY, "benchmark only: sleeps past its deadline, then answers uniform")
    def stall(problem):
        deadline = float(problem.options.get("deadline") or 0.05)
        time.sleep(1.5 * deadline + 0.05)
        return np.full(problem.t0.shape, problem.mean_dwell, dtype=np.float64)


_RE = None


def run_engine():
    """This process's RunEngine (one per process, created on first use)."""
    global _RE
    if _RE is None:
        from bluesky import RunEngine

        _RE = RunEngine({})
    return _RE


class _Docs:
    """Keeps what the benchmarks read from a run's documents: start, pass summaries, stop."""

    def __init__(self) -> None:
        self.start: dict = {}
        self.stop: dict = {}
        self.passes: list[dict] = []
        self.row_excess_s: list[float] = []
        """Per row: realized − predicted instrument seconds (the software's share)."""
        self._streams: dict[str, str] = {}

    def __call__(self, name: str, doc: dict) -> None:
        if name == "start":
            self.start = doc
        elif name == "stop":
            self.stop = doc
        elif name == "descriptor":
            self._streams[doc["uid"]] = doc.get("name", "")
        elif name == "event" and self._streams.get(doc["descriptor"]) == "passes":
            self.passes.append({k.removeprefix("passes_"): v for k, v in doc["data"].items()})
        elif name == "event" and self._streams.get(doc["descriptor"]) == "timeline":
            d = doc["data"]
            self.row_excess_s.append(
                float(d["timeline_realized_s"]) - float(d["timeline_planned_s"])
            )


def run_plan(plan, speedup: float) -> tuple[float, _Docs]:
    """Run ``plan`` on this process's RunEngine; ``(instrument seconds used, documents)``."""
    RE = run_engine()
    docs = _Docs()
    token = RE.subscribe(docs)
    try:
        start = time.perf_counter()
        RE(plan)
        used = (time.perf_counter() - start) * speedup
    finally:
        RE.unsubscribe(token)
    return used, docs


def min_budget(make_plan: Callable[[float], Any]) -> float:
    """Smallest budget (s) a plan accepts, read from its refusal at a 1 ms budget."""
    from dwellwise.planners import ScanRefused

    try:
        make_plan(1e-3)
    except ScanRefused as exc:
        m = _MIN_BUDGET.search(str(exc))
        if m is None:
            raise
        return float(m.group(1))
    raise RuntimeError("a 1 ms budget was accepted")


def _quantile(values: Sequence[float], q: float) -> float:
    return float(np.quantile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def _init_worker() -> None:
    """One core per worker: torch (a learned policy's training, which may outlive its deadline in
    an abandoned thread) would otherwise take every core and slow the other worker's scan."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    ensure_stall_policy()


def worker_pool(workers: int = 2):
    """A pool of ``workers`` spawned processes (each builds its own beamlines and RunEngine)."""
    return mp.get_context("spawn").Pool(workers, initializer=_init_worker)


def _map(func: Callable, items: Sequence, workers: int, progress: str = "", pool=None) -> list:
    """``func`` over ``items`` in ``pool``, else in ``workers`` new processes (0: in this one)."""
    out = []
    t0 = time.perf_counter()
    step = max(1, len(items) // 10)
    own = None
    if pool is None and workers > 0:
        pool = own = worker_pool(workers)
    if pool is None:
        ensure_stall_policy()
        results: Iterable = map(func, items)
    else:
        results = pool.imap_unordered(func, items, chunksize=1)
    try:
        for i, r in enumerate(results, 1):
            out.append(r)
            if progress and (i % step == 0 or i == len(items)):
                print(
                    f"  {progress}: {i}/{len(items)} ({time.perf_counter() - t0:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if own is not None:  # every result is in: stop the workers (abandoned policy threads too)
            own.terminate()
            own.join()
    return out


# -- 1. budget -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetCase:
    """One randomized budget scan."""

    index: int
    seed: int
    scene: str
    shape: tuple[int, int]
    pixel_size: float
    """Pitch, mm."""
    t0_factor: float
    """t0 = t0_factor · pitch / v_max."""
    budget_factor: float
    """budget = budget_factor · the smallest budget the plan accepts."""
    policy: str
    """Dwell policy of passes ≥ 2 (one-pass scans are ``budget_raster_scan``: no policy)."""
    passes: int
    speedup: float
    fault: str
    """One of :data:`FAULT_KINDS`."""
    slow_rows: tuple[tuple[int, float], ...] = ()
    """(fly-row count, slow factor)."""
    stalls: tuple[tuple[int, float], ...] = ()
    """(fly-row count, stall as a fraction of the budget)."""
    workdir: str = ""


def budget_cases(
    n: int, seed: int = 0, *, max_side: int = 32, workdir: str = ""
) -> list[BudgetCase]:
    """``n`` randomized budget scans (reproducible from ``seed``)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(6, max_side + 1, size=2))
        passes = int(rng.integers(1, 4))
        policy = str(rng.choice(BUDGET_POLICIES))
        fault = str(rng.choice(FAULT_KINDS, p=FAULT_PROBS))
        rows_total = passes * h
        slow: tuple[tuple[int, float], ...] = ()
        stalls: tuple[tuple[int, float], ...] = ()
        if "slow" in fault:
            picks = rng.choice(
                rows_total, size=min(rows_total, int(rng.integers(1, 4))), replace=False
            )
            slow = tuple((int(r), float(rng.uniform(1.5, 4.0))) for r in sorted(picks))
        if "stall" in fault:
            picks = rng.choice(
                rows_total, size=min(rows_total, int(rng.integers(1, 3))), replace=False
            )
            stalls = tuple((int(r), float(rng.uniform(0.01, 0.05))) for r in sorted(picks))
        cases.append(
            BudgetCase(
                index=i,
                seed=int(rng.integers(2**31)),
                scene=str(rng.choice(["procedural", "astronaut", "coffee", "rocket", "chelsea"])),
                shape=(h, w),
                pixel_size=float(np.round(rng.uniform(0.25, 1.0), 3)),
                t0_factor=float(rng.uniform(1.0, 3.0)),
                budget_factor=float(rng.uniform(1.05, 3.0)),
                policy=RASTER if passes == 1 else policy,
                passes=passes,
                speedup=float(np.round(rng.uniform(20.0, 60.0), 1)),
                fault=fault,
                slow_rows=slow,
                stalls=stalls,
                workdir=workdir,
            )
        )
    return cases


def run_budget_case(case: BudgetCase) -> dict[str, Any]:
    """Run one budget scan; the row of :func:`summarize_budget`'s input."""
    from dwellwise.drivers.sim import sim_beamline
    from dwellwise.drivers.sim_stage import StageFaults
    from dwellwise.planners import adaptive_scan, budget_raster_scan

    ensure_stall_policy()
    out: dict[str, Any] = {**asdict(case), "error": ""}
    path = Path(case.workdir or tempfile.gettempdir()) / f"budget_{case.index:04d}.h5"
    try:
        faults = StageFaults(slow_factor=dict(case.slow_rows))
        bl = sim_beamline(
            case.scene,
            shape=case.shape,
            pixel_size=case.pixel_size,
            speedup=case.speedup,
            seed=case.seed,
            faults=faults,
        )
        t0 = case.t0_factor * bl.stage.kinematics.min_dwell(case.pixel_size)
        kw = dict(
            shape=case.shape,
            pixel_size=case.pixel_size,
            t0=t0,
            policy=case.policy,
            passes=case.passes,
        )

        def plan(budget: float):
            if case.passes == 1:  # the one-pass plan that fills its budget
                region = dict(shape=case.shape, pixel_size=case.pixel_size)
                return budget_raster_scan(bl.stage, bl.sdd, budget=budget, **region)
            return adaptive_scan(bl.stage, bl.sdd, budget=budget, **kw)

        floor = min_budget(plan)
        budget = floor * case.budget_factor
        # stalls are instrument seconds: a fraction of the budget (known only now)
        faults.stall_s.update({n: frac * budget for n, frac in case.stalls})
        bl.sdd.file_path = str(path)
        used, docs = run_plan(plan(budget), case.speedup)
        h = case.shape[0]
        with h5py.File(path, "r") as f:
            complete = f["entry/passes/1/rows_complete"][...]
            status = f["entry/scan_status"][()].decode().strip()
        pass1 = next((p for p in docs.passes if p["pass_number"] == 1), {})
        rows1 = int(pass1.get("rows_done", 0))
        cut = rows1 < h
        out.update(
            t0=t0,
            min_budget=floor,
            budget=budget,
            used=used,
            ratio=used / budget,
            status=status,
            exit_status=docs.stop.get("exit_status", ""),
            pass1_rows=int(complete.sum()),
            pass1_cut=cut,
            # every pass-1 row is in the file unless the budget ended pass 1, and then exactly
            # the rows the plan reported done, with /entry/scan_status saying which
            pass1_ok=(
                bool(complete.all()) and status == "completed"
                if not cut
                else int(complete.sum()) == rows1 and status == "truncated"
            ),
            passes_flown=sum(1 for p in docs.passes if p["rows_done"] > 0),
            fell_back=any(bool(p.get("fell_back")) for p in docs.passes),
            compute_s=max((float(p.get("compute_s", 0.0)) for p in docs.passes), default=0.0),
            deadline_s=float(docs.start.get("planned_times", {}).get("compute_deadline_s", 0.0)),
        )
    except Exception as exc:  # reported in the table, never hidden
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        path.unlink(missing_ok=True)
    return out


def summarize_budget(rows: Sequence[dict]) -> list[object]:
    """One table row (:data:`BUDGET_COLUMNS`) for ``rows``."""
    ok = [r for r in rows if not r["error"]]
    ratios = [r["ratio"] for r in ok]
    margin = min((r["budget"] - r["used"] for r in ok), default=float("nan"))
    return [
        len(rows),
        sum(1 for r in ok if r["used"] > r["budget"]),
        f"{_quantile(ratios, 0.5):.3f}",
        f"{_quantile(ratios, 0.05):.3f}",
        f"{max(ratios, default=float('nan')):.3f}",
        f"{margin:.2f}",
        sum(1 for r in ok if r["pass1_cut"]),
        sum(1 for r in ok if not r["pass1_ok"]),
        sum(1 for r in rows if r["error"]),
    ]


def budget_tables(rows: Sequence[dict]) -> str:
    """Markdown: overall, by injected fault, by policy and by number of passes."""
    from dwellwise.benchmarks.results import markdown_table

    parts = ["**All scans**\n", markdown_table(BUDGET_COLUMNS, [summarize_budget(rows)])]

    def grouped(title: str, key: Callable[[dict], str], labels: Iterable[str]) -> None:
        table = []
        for label in labels:
            sub = [r for r in rows if key(r) == label]
            if sub:
                table.append([label, *summarize_budget(sub)])
        parts.extend([f"\n**By {title}**\n", markdown_table([title, *BUDGET_COLUMNS], table)])

    grouped("injected stage fault", lambda r: r["fault"], FAULT_KINDS)
    compute = [r for r in rows if r["policy"] == STALL_POLICY and r["passes"] > 1]
    if compute:
        parts.extend(
            [
                f"\n**Compute stalls** (`{STALL_POLICY}` policy sleeping past its deadline, "
                "passes ≥ 2; overlaps the stage-fault rows)\n",
                markdown_table(
                    ["compute stall", *BUDGET_COLUMNS], [["yes", *summarize_budget(compute)]]
                ),
            ]
        )
    grouped("policy", lambda r: r["policy"], (*BUDGET_POLICIES, RASTER))
    grouped("passes", lambda r: str(r["passes"]), ("1", "2", "3"))
    ok = [r for r in rows if not r["error"]]
    if ok:
        worst = max(ok, key=lambda r: r["ratio"])
        parts.append(
            f"\nClosest call / worst case: scan {worst['index']} ({worst['shape'][0]}×{worst['shape'][1]} px, "
            f"pitch {worst['pixel_size']} mm, policy {worst['policy']}, {worst['passes']} pass(es), "
            f"fault {worst['fault']}, speedup {worst['speedup']:g}): used {worst['used']:.2f} s of "
            f"{worst['budget']:.2f} s (ratio {worst['ratio']:.3f})."
        )
    over = [r for r in ok if r["used"] > r["budget"]]
    for r in over[:10]:
        parts.append(
            f"\nOverrun: scan {r['index']} ({r['shape'][0]}×{r['shape'][1]} px, policy {r['policy']}, "
            f"{r['passes']} pass(es), speedup {r['speedup']:g}, slow rows {list(r['slow_rows'])}, "
            f"stalls {[(n, round(f * r['budget'], 2)) for n, f in r['stalls']]} (fly-row count, "
            f"factor or s; pass k flies rows {r['shape'][0]}·(k−1) .. {r['shape'][0]}·k−1)): "
            f"used {r['used']:.2f} s of {r['budget']:.2f} s."
        )
    late = [r for r in ok if r["passes"] > 1 and r["compute_s"] > r["deadline_s"]]
    if late:
        worst = max(late, key=lambda r: r["compute_s"] - r["deadline_s"])
        parts.append(
            f"\nA compute between passes took longer than the planned compute deadline in "
            f"{len(late)} of {sum(1 for r in ok if r['passes'] > 1)} multi-pass scans (worst: scan "
            f"{worst['index']}, policy {worst['policy']}, {worst['compute_s']:.2f} s against "
            f"{worst['deadline_s']:.2f} s)."
        )
    errors = [r for r in rows if r["error"]]
    for r in errors[:5]:
        parts.append(f"\nError in scan {r['index']}: {r['error'][:300]}")
    return "\n".join(parts)


def run_budget_benchmark(
    n: int = 240,
    *,
    seed: int = 0,
    workers: int = 2,
    max_side: int = 32,
    cases: Sequence[BudgetCase] | None = None,
    pool=None,
) -> list[dict]:
    """Run ``n`` randomized budget scans (or the given ``cases``) in ``pool`` (else ``workers``
    new processes, 0: this one); rows sorted by scan index."""
    with tempfile.TemporaryDirectory(prefix="dwellwise-bench-") as tmp:
        if cases is None:
            cases = budget_cases(n, seed, max_side=max_side, workdir=tmp)
        else:
            cases = [BudgetCase(**{**asdict(c), "workdir": c.workdir or tmp}) for c in cases]
        rows = _map(run_budget_case, list(cases), workers, progress="budget scans", pool=pool)
    return sorted(rows, key=lambda r: r["index"])


# -- 2. overhead -----------------------------------------------------------------------------------


def run_overhead_benchmark(
    shape: tuple[int, int] = (32, 32), pixel_size: float = 0.5, dwell: float = 0.005
) -> dict[str, Any]:
    """A ``raster_scan`` pass at speedup 1 against the time model, and ``grid_scan`` in step mode."""
    from bluesky.plans import grid_scan
    from dwellwise.drivers.sim import sim_beamline
    from dwellwise.planners import raster_scan

    h, w = shape
    bl = sim_beamline("astronaut", shape=shape, pixel_size=pixel_size, speedup=1.0, seed=0)
    with tempfile.TemporaryDirectory(prefix="dwellwise-bench-") as tmp:
        bl.sdd.file_path = str(Path(tmp) / "raster.h5")
        plan = raster_scan(bl.stage, bl.sdd, shape=shape, pixel_size=pixel_size, dwell=dwell)
        fly_wall, docs = run_plan(plan, 1.0)
    predicted = float(docs.start["planned_times"]["pass1_s"])
    realized = float(docs.passes[0]["realized_s"])
    # the same devices, Bluesky's own step scan: move, count preset_time, read, per point
    bl.stage.x.move(0.0, wait=True)
    bl.stage.y.move(0.0, wait=True)
    bl.sdd.preset_time.put(dwell)
    ys = (0.0, (h - 1) * pixel_size)
    xs = (0.0, (w - 1) * pixel_size)
    step_wall, step_docs = run_plan(
        grid_scan([bl.sdd], bl.stage.y, *ys, h, bl.stage.x, *xs, w, snake_axes=True), 1.0
    )
    kin = bl.stage.kinematics
    step_model = h * w * dwell + h * (w - 1) * float(kin.move_time(pixel_size))
    step_model += (h - 1) * float(kin.move_time(pixel_size))
    return {
        "shape": shape,
        "pixel_size": pixel_size,
        "dwell": dwell,
        "fly_predicted_s": predicted,
        "fly_realized_s": realized,
        "fly_wall_s": fly_wall,
        "fly_rows": int(docs.passes[0]["rows_done"]),
        "step_wall_s": step_wall,
        "step_model_s": step_model,
        "step_exit": step_docs.stop.get("exit_status", ""),
        "ratio": realized / predicted,
        "ratio_wall": fly_wall / predicted,
        "step_over_fly": step_wall / fly_wall,
    }


def overhead_table(r: dict) -> str:
    from dwellwise.benchmarks.results import markdown_table

    h, w = r["shape"]
    rows = [
        [
            "`raster_scan` (fly, serpentine)",
            f"{r['fly_predicted_s']:.3f}",
            f"{r['fly_realized_s']:.3f}",
            f"{r['fly_wall_s']:.3f}",
            f"{r['ratio']:.3f} (RE call {r['ratio_wall']:.3f})",
        ],
        [
            "`bluesky.plans.grid_scan` (step, snake)",
            f"{r['step_model_s']:.3f} (moves + counting only)",
            "-",
            f"{r['step_wall_s']:.3f}",
            f"{r['step_wall_s'] / r['step_model_s']:.3f}",
        ],
    ]
    table = markdown_table(
        ["plan", "predicted (s)", "pass realized (s)", "RE call wall (s)", "realized / predicted"],
        rows,
    )
    return (
        f"{h}×{w} pixels, pitch {r['pixel_size']} mm, {r['dwell'] * 1e3:g} ms per pixel, speedup 1.\n\n"
        + table
        + f"\n\nStep / fly (RE call wall time): **{r['step_over_fly']:.1f}×**. "
        f"Fly pass realized / time model: **{r['ratio']:.3f}** (target ≤ 1.05)."
    )
