"""Bluesky plans: ``raster_scan`` (one uniform pass) and ``adaptive_scan`` (a uniform first pass,
then passes whose dwell a policy decides, all inside a hard time budget).

Both fly serpentine rows (``bps.abs_set(stage, FlyRow)``) with a checkpoint before each row, so
pause, resume and abort act at row boundaries. After each row they collect the detector's row
into the ``primary`` stream (an event page of per-pixel ROI counts, live time and positions) and
the ``spectra`` stream (StreamResource/StreamDatum pointing into the cube file), and read the
row's timeline into the ``timeline`` stream; a ``passes`` stream summarizes each pass.

The argument checks run when the plan is created, before anything moves: a bad request raises
:class:`~dwellwise.planners.request.ScanRefused` with what would fit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import Msg
from dwellwise.drivers.sim_sdd import CubeSetup
from dwellwise.planners.between_passes import Allocation, AllocationJob
from dwellwise.planners.budget import OverheadTracker, ScanClock, TimeBudget
from dwellwise.planners.records import PassSummary, RowTimeline
from dwellwise.planners.request import (
    AdaptiveRequest,
    RasterRequest,
    ScanRefused,
    check_dwell,
    check_region,
    parse_request,
    resolve_weights,
)
from dwellwise.planners.resume import ResumeState, read_resume_state
from dwellwise.planners.schedule import Geometry, PassSchedule

MsgGenerator = Generator[Msg, Any, Any]
log = logging.getLogger(__name__)

ROW_OVERHEAD_WALL_S = 0.012
"""Prior for the software time per row (messages, file write), wall seconds; learned afterwards."""
END_RESERVE_WALL_S = 0.08
"""Wall seconds kept free at the end for closing the run and the file (at least)."""
TAIL_ROWS = 2.0
"""The end reserve covers this many times the worst per-row software time seen so far."""
TAIL_SHARE = 0.03
"""...but the learned part of the end reserve takes at most this share of the budget."""
COMPUTE_SHARE = 0.01
"""Default cap on the compute between passes, as a share of the budget left after the cheapest
passes. Training the network buys about 1 % of live time over the kernel estimate (``bench
dwell``: n2v-sqrt +0.014 to +0.02 efficiency over blindspot-sqrt on a ~28 % oracle gain), so
spending more than this on it loses on average; with less, ``auto`` does not train (see
:data:`dwellwise.models.n2v.MIN_DEADLINE_S`) and answers from the kernel estimate."""
COMPUTE_CAP_S = 600.0
"""Default cap on the compute between passes, instrument seconds."""
FALLBACK_COMPUTE_WALL_S = 0.05
"""Wall seconds reserved for the fallback policy when the requested one misses its deadline."""
DEFAULT_DATA_DIR = Path("dwellwise-data")
"""Where cube files go when the detector has no ``file_path`` set."""


def raster_scan(
    stage,
    sdd,
    *,
    shape: tuple[int, int],
    pixel_size: float,
    dwell: float,
    origin: tuple[float, float] = (0.0, 0.0),
    md: Mapping[str, Any] | None = None,
) -> MsgGenerator:
    """One serpentine fly-scanned pass of uniform ``dwell`` seconds per pixel."""
    req = parse_request(
        RasterRequest, shape=tuple(shape), pixel_size=pixel_size, dwell=dwell, origin=tuple(origin)
    )
    scan = _FlyScan(stage, sdd, req.geometry(), passes=1, plan_name="raster_scan")
    check_dwell(req.dwell, scan.geom, scan.kin, "dwell")
    request = req.model_dump()
    return scan.run(request, md, first_dwell=req.dwell, budget=None)


def budget_raster_scan(
    stage,
    sdd,
    *,
    shape: tuple[int, int],
    pixel_size: float,
    budget: float,
    origin: tuple[float, float] = (0.0, 0.0),
    md: Mapping[str, Any] | None = None,
) -> MsgGenerator:
    """The raster baseline at equal budget: one uniform pass with the largest dwell that fits
    ``budget`` seconds (governed like an adaptive scan, so it never ends late)."""
    req = parse_request(
        AdaptiveRequest,
        shape=tuple(shape),
        pixel_size=pixel_size,
        budget=budget,
        t0=1.0,
        passes=1,
        policy="uniform",
        origin=tuple(origin),
    )
    scan = _FlyScan(stage, sdd, req.geometry(), passes=1, plan_name="budget_raster_scan")
    sched = scan.schedule(1, np.full(scan.geom.shape, scan.min_dwell), scan.start_xy())
    available = budget - scan.end_reserve_s
    fitted = sched.fit_remaining(0, available, scan.overhead.margin_s())
    if fitted is None:
        need = float(sched.predicted_s().sum()) + scan.rows * scan.overhead.margin_s()
        raise ScanRefused(
            f"budget {budget:g} s is too small for one pass at the shortest dwell "
            f"({scan.min_dwell * 1e3:.3g} ms); the smallest budget that fits is "
            f"{need + scan.end_reserve_s:.4g} s"
        )
    dwell = float(sched.dwell.mean())
    request = {**req.model_dump(exclude={"t0", "policy", "passes", "weights"}), "dwell": dwell}
    return scan.run(request, md, first_dwell=dwell, budget=budget)


def adaptive_scan(
    stage,
    sdd,
    *,
    shape: tuple[int, int],
    pixel_size: float,
    budget: float,
    t0: float,
    policy: str = "auto",
    passes: int = 2,
    weights: Sequence[float] | Mapping[str, float] | None = None,
    origin: tuple[float, float] = (0.0, 0.0),
    md: Mapping[str, Any] | None = None,
) -> MsgGenerator:
    """A uniform first pass of ``t0`` seconds per pixel, then ``passes - 1`` passes whose dwell
    ``policy`` decides from everything measured so far, all within ``budget`` seconds."""
    req = parse_request(
        AdaptiveRequest,
        shape=tuple(shape),
        pixel_size=pixel_size,
        budget=budget,
        t0=t0,
        policy=policy,
        passes=passes,
        weights=resolve_weights(weights, sdd.elements),
        origin=tuple(origin),
    )
    scan = _FlyScan(stage, sdd, req.geometry(), passes=req.passes, plan_name="adaptive_scan")
    check_dwell(req.t0, scan.geom, scan.kin, "t0")
    scan.plan_adaptive(req)
    return scan.run(req.model_dump(), md, first_dwell=req.t0, budget=req.budget, adaptive=req)


class _FlyScan:
    """State of one fly scan: geometry, kinematics, budget, what has been measured."""

    def __init__(self, stage, sdd, geom: Geometry, *, passes: int, plan_name: str) -> None:
        self.stage, self.sdd, self.geom = stage, sdd, geom
        self.kin = stage.kinematics
        self.clock = ScanClock(stage.clock, stage)
        self.passes = passes
        self.plan_name = plan_name
        self.rows = geom.shape[0]
        self.min_dwell = self.kin.min_dwell(geom.pixel_size)
        speed = getattr(self.clock, "speedup", 1.0)
        self.overhead = OverheadTracker(prior_s=ROW_OVERHEAD_WALL_S * speed)
        self._end_reserve_base_s = END_RESERVE_WALL_S * speed
        self._worst_row_software_s = 0.0  # collect + write + records after a row, worst seen
        self._budget_s: float | None = None
        self.fallback_s = FALLBACK_COMPUTE_WALL_S * speed + 2e-6 * speed * np.prod(geom.shape)
        self.planned: dict[str, float] = {}
        self._rows_done = 0
        self._compute_s = 0.0  # instrument seconds of the compute before the current pass
        self.deadline_s = 0.0
        self.min_pass_s = 0.0
        c = len(sdd.elements)
        self.roi_counts = np.zeros((c, *geom.shape))
        self.live_time = np.zeros(geom.shape)
        self.timeline = RowTimeline(name="timeline")
        self.summary = PassSummary(name="passes")
        check_region(geom, stage.limits, self.kin)

    @property
    def end_reserve_s(self) -> float:
        """Instrument seconds kept at the end of the budget for what follows the last row (its
        collection and file write, the pass summary, closing the run). At least the fixed
        prior; at least ``TAIL_ROWS`` times the worst software time seen after any row, so a
        loaded machine (whose hiccups a high speedup magnifies) keeps a larger reserve, but
        never more than ``TAIL_SHARE`` of the budget (a hiccup must not cost a whole pass)."""
        learned = TAIL_ROWS * self._worst_row_software_s
        if self._budget_s is not None:
            learned = min(learned, TAIL_SHARE * self._budget_s)
        return max(self._end_reserve_base_s, learned)

    # -- planning before anything moves -----------------------------------------------------
    def start_xy(self) -> tuple[float, float]:
        return float(self.stage.x.position), float(self.stage.y.position)

    def schedule(self, k: int, dwell: np.ndarray, start_xy) -> PassSchedule:
        return PassSchedule(k, self.geom, dwell, self.kin, start_xy=start_xy, min_dwell=self.min_dwell)

    def plan_adaptive(self, req: AdaptiveRequest, check: bool = True) -> None:
        """Check that the first pass plus the cheapest later passes fit the budget (``check``);
        choose the compute deadline."""
        first = self.schedule(1, np.full(self.geom.shape, req.t0), self.start_xy())
        pass1 = float(first.predicted_s().sum())
        later = self.schedule(2, np.full(self.geom.shape, self.min_dwell), first.end_xy())
        self.min_pass_s = float(later.predicted_s().sum()) + self.rows * self.overhead.margin_s()
        per_later = self.min_pass_s + self.fallback_s
        needed = pass1 + self.rows * self.overhead.margin_s() + self.end_reserve_s
        needed += (req.passes - 1) * per_later
        if check and req.budget < needed:
            other = "fewer passes or a smaller region"
            if req.t0 > self.min_dwell * 1.001:
                other = f"a shorter t0 (down to {self.min_dwell * 1e3:.4g} ms), " + other
            raise ScanRefused(
                f"budget {req.budget:g} s is too small: the first pass at t0 = {req.t0 * 1e3:.4g} ms "
                f"takes {pass1:.4g} s and {req.passes - 1} more pass(es) need at least "
                f"{per_later:.4g} s each; the smallest budget that fits is {needed:.4g} s "
                f"(or ask for {other})"
            )
        spare = max(0.0, req.budget - needed)
        if req.deadline is not None:
            self.deadline_s = min(req.deadline, spare / max(1, req.passes - 1) + self.fallback_s)
        else:
            self.deadline_s = min(COMPUTE_SHARE * spare / max(1, req.passes - 1), COMPUTE_CAP_S) + self.fallback_s
        self.planned = {
            "budget_s": float(req.budget),
            "pass1_s": pass1,
            "min_later_pass_s": self.min_pass_s,
            "compute_deadline_s": float(self.deadline_s),
            "end_reserve_s": float(self.end_reserve_s),
            "min_budget_s": float(needed),
        }

    # -- the plan ------------------------------------------------------------------------------
    def run(
        self,
        request: dict,
        md: Mapping[str, Any] | None,
        *,
        first_dwell: float,
        budget: float | None,
        adaptive: AdaptiveRequest | None = None,
        resume: ResumeState | None = None,
    ) -> MsgGenerator:
        timer = TimeBudget(budget, self.clock) if budget is not None else None
        self._budget_s = budget
        plan = self._scan(request, dict(md or {}), first_dwell, timer, adaptive, resume)
        return bpp.stage_wrapper(plan, [self.sdd])

    def _start_md(self, request: dict, md: dict) -> dict:
        h, w = self.geom.shape
        path = self._cube_path()
        if not self.planned:
            sched = self.schedule(1, np.full(self.geom.shape, request["dwell"]), self.start_xy())
            self.planned = {"pass1_s": float(sched.predicted_s().sum())}
        return {
            "plan_name": self.plan_name,
            "plan_args": {k: v for k, v in request.items() if v is not None},
            "detectors": [self.sdd.name],
            "motors": [self.stage.x.name, self.stage.y.name],
            "shape": [h, w],
            "num_points": h * w * self.passes,
            "passes": self.passes,
            "elements": list(self.sdd.elements),
            "request": {k: v for k, v in request.items() if v is not None},
            "planned_times": self.planned,
            "cube_file": str(path),
            "speedup": float(getattr(self.clock, "speedup", 1.0)),
            "hints": {"dimensions": [(["x"], "primary"), (["y"], "primary")]},
            **md,
        }

    def _cube_path(self) -> Path:
        if not hasattr(self, "_path"):
            configured = str(getattr(self.sdd, "file_path", "") or "")
            if configured:
                self._path = Path(configured)
            else:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                self._path = DEFAULT_DATA_DIR / f"{self.plan_name}_{stamp}_{id(self) & 0xFFFF:04x}.h5"
            self._path.parent.mkdir(parents=True, exist_ok=True)
        return self._path

    def _scan(
        self,
        request: dict,
        md: dict,
        first_dwell: float,
        timer: TimeBudget | None,
        adaptive: AdaptiveRequest | None,
        resume: ResumeState | None = None,
    ) -> MsgGenerator:
        if timer is not None:
            timer.start(self.clock.now() - (resume.budget_used_s if resume else 0.0))
        self.stage.forget_rows()
        start_md = self._start_md(request, md)
        if resume is not None:
            start_md["resumed_from"] = {"budget_used_s": resume.budget_used_s, "pass": resume.pass_number}
        yield from bps.open_run(start_md)
        # Introduce the stage to the RunEngine now, so that a pause at the very first checkpoint
        # already reaches its pause()/resume() (which keep paused time out of the budget).
        yield Msg("null", self.stage)
        status = "failed"
        truncated = ""
        try:
            yield from bps.prepare(
                self.sdd,
                CubeSetup(
                    path=self._cube_path(),
                    shape=self.geom.shape,
                    pixel_size=self.geom.pixel_size,
                    origin=self.geom.origin,
                    passes=self.passes,
                    metadata={
                        "plan_name": self.plan_name,
                        "request": start_md["request"],
                        "planned_times": self.planned,
                    },
                    resume=resume is not None,
                ),
                wait=True,
            )
            yield from bps.declare_stream(self.sdd.pixels, name="primary", collect=True)
            yield from bps.declare_stream(self.sdd.spectra, name="spectra", collect=True)
            if resume is None:
                sched = self.schedule(1, np.full(self.geom.shape, first_dwell), self.start_xy())
                if timer is not None and adaptive is None:  # budget raster: fill what is left
                    sched.fit_remaining(
                        0, timer.left_s() - self.end_reserve_s, self.overhead.margin_s()
                    )
                alloc = _fixed_allocation(sched.dwell)
            elif resume.planned is None and resume.pass_number == 1:  # stopped before any row
                sched = self.schedule(1, np.full(self.geom.shape, first_dwell), self.start_xy())
                alloc = _fixed_allocation(sched.dwell)
            else:
                sched, alloc = resume.schedule(self), _fixed_allocation(resume.planned, "resumed")
            going = True
            if sched is not None:
                last = adaptive is None or sched.pass_number == self.passes
                fill = last and (adaptive is None or sched.pass_number > 1)
                going = yield from self._fly_pass(sched, timer, alloc, fill=fill)
                if not going and sched.pass_number == 1:
                    truncated = f"the budget ran out during pass 1 ({self._rows_done} rows recorded)"
            end_xy = sched.end_xy() if sched is not None and sched.rows else self.start_xy()
            first_next = (sched.pass_number if sched is not None else resume.pass_number - 1) + 1
            for k in range(first_next, self.passes + 1):
                if not going or adaptive is None:
                    break
                alloc, sched = yield from self._plan_next_pass(k, adaptive, timer, end_xy)
                if sched is None:
                    log.warning("pass %d skipped: not even its shortest dwell fits the budget", k)
                    break
                going = yield from self._fly_pass(sched, timer, alloc, fill=k == self.passes)
                end_xy = sched.end_xy()
            status = "truncated" if truncated else "completed"
        except GeneratorExit:
            status = "aborted"
            raise
        except BaseException as exc:
            status = "aborted" if type(exc).__name__ in ("RequestAbort", "RequestStop") else "failed"
            raise
        finally:
            self.sdd.set_scan_status(status)
        if truncated:
            log.warning("scan truncated: %s", truncated)
            yield from bps.close_run(exit_status="fail", reason=truncated)
        else:
            yield from bps.close_run()

    def _plan_next_pass(
        self, k: int, req: AdaptiveRequest, timer: TimeBudget, start_xy
    ) -> Generator[Msg, Any, tuple[Any, PassSchedule | None]]:
        """Compute the dwell of pass ``k`` under the deadline, then fit it to the time left."""
        later = self.passes - k  # passes after this one
        reserve_later = later * (self.min_pass_s + self.fallback_s)
        n_pix = float(np.prod(self.geom.shape))
        t_compute = self.clock.now()
        left = timer.left_s() - self.end_reserve_s - reserve_later
        deadline = max(0.0, min(self.deadline_s, left - self.min_pass_s - self.fallback_s))
        guess = (left - deadline) / (later + 1) - self.rows * (self.overhead.mean_s() + 0.05)
        mean_guess = guess / n_pix
        if mean_guess <= self.min_dwell * 1.001 or deadline <= self.fallback_s:
            alloc = _fixed_allocation(
                np.full(self.geom.shape, self.min_dwell), note="no time left for a policy"
            )
        else:
            job = AllocationJob(
                self.roi_counts.copy(),
                np.maximum(self.live_time, 1e-9),
                mean_guess,
                policy=req.policy,
                weights=None if req.weights is None else np.asarray(req.weights),
                min_dwell=self.min_dwell,
                deadline_s=(deadline - self.fallback_s) / float(getattr(self.clock, "speedup", 1.0)),
                seed=0,
            )
            yield Msg("wait_for", None, [job.wait])
            alloc = job.result()
        compute_s = self.clock.now() - t_compute
        sched = self.schedule(k, alloc.dwell, start_xy)
        left = timer.left_s() - self.end_reserve_s - reserve_later
        available = left / (later + 1) if later else left
        predicted = sched.fit_remaining(
            0, available - self.overhead.margin_s(), self.overhead.mean_s()
        )
        self._compute_s = compute_s
        if predicted is None:
            return alloc, None
        return alloc, sched

    def _fly_pass(
        self, sched: PassSchedule, timer: TimeBudget | None, alloc, fill: bool = False
    ) -> Generator[Msg, Any, bool]:
        """Fly every row of a pass under the governor; ``False`` if the budget ended it early.
        ``fill``: the pass may also lengthen its remaining rows when it runs ahead of plan (the
        last pass of a budget; never the user's fixed-t0 first pass)."""
        k = sched.pass_number
        pass_start = self.clock.now()
        planned_total = float(sched.predicted_s().sum())
        later = self.passes - k
        reserve_later = later * (self.min_pass_s + self.fallback_s) if timer is not None else 0.0
        replans = 0
        done = 0
        finished = True
        self.sdd.set_planned_dwell(k, sched.dwell)
        mark = self.clock.now()
        for j in range(sched.rows):
            paused_before, before = self.clock.paused_s(), self.clock.now()
            yield from bps.checkpoint()
            if self.clock.paused_s() > paused_before:  # an operator's pause at this checkpoint:
                self.clock.exclude(self.clock.now() - before)  # its lead-in is not scan time
                mark = self.clock.now()
            paused_row = self.clock.paused_s()
            replanned = False
            if timer is not None:
                left = timer.left_s() - self.end_reserve_s - reserve_later
                remaining = sched.predicted_s(j)
                mean, margin = self.overhead.mean_s(), self.overhead.margin_s()
                if remaining.sum() + remaining.size * mean + margin > left:
                    replanned = True
                    replans += 1
                    if sched.fit_remaining(j, left - margin, mean) is None:
                        if reserve_later > 0:  # give up later passes before this one
                            reserve_later, later = 0.0, 0
                            left = timer.left_s() - self.end_reserve_s
                        fitted = sched.fit_remaining(j, left - margin, mean)
                        if fitted is None:
                            sched.dwell[sched.order[j]] = self.min_dwell
                            if float(sched.predicted_s(j)[0]) + mean > left:  # else its deadline cuts it
                                finished = False
                                break
                elif fill and j % 4 == 0 and remaining.sum() + remaining.size * mean + margin < 0.98 * left:
                    # ahead of plan in the last pass: give the rows ahead the time left over
                    sched.fit_remaining(j, left - margin, mean)
            row = sched.fly_row(j, self._row_deadline(timer))
            predicted = float(sched.predicted_s(j)[0])
            yield from bps.abs_set(self.stage, row, wait=True)
            row_over = self.clock.now()
            pages = yield from bps.collect(self.sdd.pixels, name="primary", return_payload=True)
            yield from bps.collect(self.sdd.spectra, name="spectra")
            if not pages:  # the stage abandoned the row at the budget's hard end
                log.warning("row %d of pass %d cut at the end of the budget", row.row, k)
                finished = False
                break
            row_counts, row_live = self._accumulate(pages)
            done += 1
            now = self.clock.now()
            used = timer.used_s() if timer else now - pass_start
            self.sdd.set_budget_used(used, k, row.row)
            self.timeline.record(
                pass_number=k,
                row=row.row,
                rows_done=done,
                rows_total=sched.rows,
                planned_s=predicted,
                realized_s=now - mark,
                budget_used_s=used,
                budget_left_s=timer.left_s() if timer else float("inf"),
                counts=int(row_counts),
                live_time_s=float(row_live),
                replanned=replanned,
            )
            yield from _read_record(self.timeline, "timeline")
            now2 = self.clock.now()
            if self.clock.paused_s() == paused_row:  # rows with a pause teach nothing
                self.overhead.add(predicted, now2 - mark)
                self._worst_row_software_s = max(self._worst_row_software_s, now2 - row_over)
            mark = now2
        self.summary.record(
            pass_number=k,
            planned_s=planned_total,
            realized_s=self.clock.now() - pass_start,
            rows_done=done,
            mean_dwell_s=float(sched.dwell.mean()),
            compute_s=self._compute_s if k > 1 else 0.0,
            policy=alloc.policy,
            fell_back=bool(alloc.fell_back),
            device=alloc.device,
            train_s=float(alloc.train_s) if k > 1 else 0.0,
            replans=replans,
        )
        yield from _read_record(self.summary, "passes")
        self._rows_done = done
        return finished and done == sched.rows

    def _row_deadline(self, timer: TimeBudget | None) -> float | None:
        """When the stage must give up a row: the end of the budget less the end reserve, on
        the stage's clock without paused time (see ``FlyRow.deadline``)."""
        if timer is None:
            return None
        unpaused = self.stage.clock.now() - float(getattr(self.stage, "paused_s", 0.0))
        return unpaused + timer.left_s() - self.end_reserve_s

    def _accumulate(self, pages: list[dict]) -> tuple[float, float]:
        """Add collected rows to the running ROI counts and live time; returns the row's totals."""
        total, live = 0.0, 0.0
        for page in pages:
            data = page["data"]
            rows = np.asarray(data["row"], dtype=int)
            cols = np.asarray(data["col"], dtype=int)
            lt = np.asarray(data["live_time"], dtype=float)
            self.live_time[rows, cols] += lt
            live += float(lt.sum())
            roi = np.asarray(data["roi_counts"], dtype=float).reshape(len(rows), -1)
            self.roi_counts[:, rows, cols] += roi.T
            total += float(roi.sum())
        return total, live


def _fixed_allocation(dwell: np.ndarray, policy: str = "uniform", note: str = "") -> Allocation:
    """The allocation record of a pass whose dwell was not decided by a policy."""
    return Allocation(
        dwell=dwell,
        policy=policy,
        requested=policy,
        fell_back=False,
        compute_s=0.0,
        device="-",
        note=note,
    )


def _fields_of(model, request: dict) -> dict:
    """The recorded request's fields that ``model`` takes (JSON lists back to tuples)."""
    return {
        k: tuple(v) if isinstance(v, list) and k in ("shape", "origin") else v
        for k, v in request.items()
        if k in model.model_fields
    }


def _read_record(record, stream: str) -> MsgGenerator:
    """One event of a soft record in its own stream."""
    yield from bps.create(name=stream)
    yield from bps.read(record)
    yield from bps.save()


def resume_scan(stage, sdd, *, cube_file: str | Path, md: Mapping[str, Any] | None = None) -> MsgGenerator:
    """Go on with an interrupted scan from the first incomplete row of its cube file.

    The budget already spent (recorded in the file row by row) is counted; rows already recorded
    are never measured again, so when the scan completes every pixel has exactly the dwell it
    should have."""
    state = read_resume_state(cube_file)
    req = state.request
    adaptive = None
    if state.plan_name == "adaptive_scan":
        adaptive = parse_request(AdaptiveRequest, **_fields_of(AdaptiveRequest, req))
        scan = _FlyScan(stage, sdd, adaptive.geometry(), passes=adaptive.passes, plan_name=state.plan_name)
        scan.plan_adaptive(adaptive, check=False)
        budget, first = adaptive.budget, adaptive.t0
    elif state.plan_name in ("raster_scan", "budget_raster_scan"):
        raster = parse_request(RasterRequest, **_fields_of(RasterRequest, req))
        scan = _FlyScan(stage, sdd, raster.geometry(), passes=1, plan_name=state.plan_name)
        budget, first = req.get("budget"), raster.dwell
    else:
        raise ScanRefused(f"{cube_file}: cannot resume a {state.plan_name!r} scan")
    if state.finished:
        raise ScanRefused(f"{cube_file}: every pass is complete; nothing to resume")
    scan._path = Path(cube_file)
    scan.roi_counts[...] = state.roi_counts
    scan.live_time[...] = state.live_time
    return scan.run(req, md, first_dwell=first, budget=budget, adaptive=adaptive, resume=state)
