"""Crash safety: ``kill -9`` the daemon at a random row of a running scan, restart it, resume.

``python -m dwellwise.benchmarks.crash_resume [--quick]``. Each trial starts ``dwellwise serve``
as a process (free loopback ports, a fresh data directory), submits a small adaptive scan, waits
until a chosen number of rows is done plus a random part of a row (seeded), kills the daemon
with ``SIGKILL``, restarts it on the same data directory, checks that the job is
``interrupted``, resumes it by id and waits until it is ``completed``. Then the cube file is
checked (:func:`check_cube`):

- **lost pixels**: pixels a pass skipped (a row not recorded while later rows were) or that the
  file calls recorded without holding their data (no live time where dwell was planned, summed
  live or real time or ROI counts of ``/entry/data/counts`` short of what the passes recorded);
  rows the budget governor ended a pass early on (the last rows of the last pass flown) are
  counted apart, as **rows cut by the budget**: uninterrupted scans do that too, so a baseline
  of uninterrupted scans of the same request runs alongside;
- **doubled pixels**: pixels measured more than once in a pass (summed real time above the sum of
  the planned dwells by more than half the shortest planned dwell, summed live time above the
  passes' own, or more ROI counts in ``/entry/data/counts`` than the passes recorded);
- **budget overrun**: ``/entry/budget_used_s`` above the budget.

:func:`main` prints a Markdown table and records it in ``benchmarks/RESULTS.md`` (section
``crash-resume``). ``tests/daemon/test_crash_resume.py`` runs one trial of the same machinery.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from dwellwise.benchmarks.results import markdown_table, record_section
from dwellwise.daemon.client import ControlClient

REQUEST = {
    "scene": "astronaut",
    "shape": [8, 10],
    "budget": 40.0,
    "t0": 0.005,
    "speedup": 20.0,
    "passes": 2,
}
"""The scan of every trial: about 2 s of wall time, 16 rows in two passes."""
FINAL = ("completed", "failed", "aborted", "interrupted")
SERVING = re.compile(r"dwellwise daemon serving: control (\S+), events (\S+), documents (\S+),")


class Serve:
    """``dwellwise serve`` as a child process on free loopback ports (``tcp://127.0.0.1:0``);
    its log goes to ``log_file``."""

    def __init__(self, data_dir: Path, log_file: Path, *, start_timeout: float = 90.0) -> None:
        self.data_dir = Path(data_dir)
        self.log_file = Path(log_file)
        cmd = [
            sys.executable, "-m", "dwellwise.cli", "serve", "--data-dir", str(self.data_dir),
            "--control", "tcp://127.0.0.1:0", "--events", "tcp://127.0.0.1:0",
            "--documents", "tcp://127.0.0.1:0",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_file, "ab")  # closed by stop() or kill()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + start_timeout
        while True:
            match = SERVING.search(self.log())
            if match:
                self.address = match.group(1)
                break
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(
                    f"dwellwise serve exited ({self.proc.returncode}):\n{self.log()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"dwellwise serve did not come up:\n{self.log()}")
            time.sleep(0.05)
        self.client = ControlClient(self.address, timeout=10.0)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def kill(self) -> None:
        """``kill -9`` (this process only, by its id)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def stop(self, timeout: float = 30.0) -> int:
        """Shut the daemon down (``shutdown``), killing it if it does not stop in time."""
        try:
            if self.proc.poll() is None:
                self.client.request("shutdown", timeout=5.0)
                self.proc.wait(timeout)
        except Exception:
            self.kill()
        finally:
            if not self._log.closed:
                self._log.close()
        return self.proc.returncode

    def wait_job(self, job_id: str, states=FINAL, timeout: float = 60.0) -> dict[str, Any]:
        """Poll ``job`` until the job's state is one of ``states``."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.call("job", job_id=job_id)
            if job["state"] in states:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(0.01)


@dataclass
class CubeCheck:
    """What the cube file of a finished scan says about crash safety."""

    status: str
    budget_s: float
    budget_used_s: float
    rows_complete: list[int]
    """Rows recorded per pass."""
    rows: int
    passes_started: int
    lost_pixels: int
    """Pixels a started pass skipped or whose data the file does not hold."""
    doubled_pixels: int
    rows_cut: int = 0
    """Rows not measured because the budget ended a pass early (or left no room for one): the
    governor's choice, which an uninterrupted scan makes too, not a loss."""
    details: list[str] = field(default_factory=list)

    @property
    def overrun(self) -> bool:
        return self.budget_used_s > self.budget_s + 1e-9

    @property
    def complete(self) -> bool:
        """Every row of every pass recorded."""
        return all(n == self.rows for n in self.rows_complete)


def _roi_of_counts(f: h5py.File) -> np.ndarray:
    """``(C, H, W)`` ROI sums of ``/entry/data/counts`` with the file's ROI windows."""
    counts = f["entry/data/counts"][...]
    windows = f["entry/rois/windows"][...].astype(np.int64)
    csum = np.concatenate(
        [np.zeros((*counts.shape[:2], 1), np.int64), np.cumsum(counts, axis=2, dtype=np.int64)],
        axis=2,
    )
    return np.stack([csum[..., hi + 1] - csum[..., lo] for lo, hi in windows])


def _flown_last(done: np.ndarray, ends: np.ndarray | None) -> bool:
    """Whether the rows a pass did not record are the last ones it would have flown (rows are
    flown in order, up or down: the recorded rows' end times say which): a pass the budget
    ended early, not rows skipped in the middle."""
    rec, unrec = np.flatnonzero(done), np.flatnonzero(~done)
    if unrec.size == 0 or rec.size == 0:
        return True
    forward = rec.size < 2 or ends is None or ends[rec[-1]] >= ends[rec[0]]
    backward = rec.size < 2 or ends is None or ends[rec[-1]] <= ends[rec[0]]
    return (forward and unrec.min() > rec.max()) or (backward and unrec.max() < rec.min())


def check_cube(path: str | Path, budget_s: float) -> CubeCheck:
    """Lost and doubled pixels, rows the budget cut and the budget used of a scan's cube file
    (see the module)."""
    with h5py.File(path, "r", swmr=True) as f:
        status = bytes(f["entry/scan_status"][()]).decode().strip()
        used = float(f["entry/budget_used_s"][()])
        names = sorted(f["entry/passes"], key=int)
        g = {n: f[f"entry/passes/{n}"] for n in names}
        done = {n: g[n]["rows_complete"][...].astype(bool) for n in names}
        planned = {n: g[n]["dwell_planned"][...] for n in names}
        live = {n: g[n]["live_time"][...] for n in names}
        roi = {n: g[n]["roi_counts"][...].astype(np.int64) for n in names}
        ends = {n: g[n]["row_end_s"][...] if "row_end_s" in g[n] else None for n in names}
        real_sum = f["entry/data/real_time"][...]
        live_sum = f["entry/data/live_time"][...]
        roi_sum = _roi_of_counts(f)
    h, w = real_sum.shape
    started = [n for n in names if np.any(planned[n] > 0)]
    lost = np.zeros((h, w), bool)
    details: list[str] = []
    exp_real = np.zeros((h, w))
    exp_live = np.zeros((h, w))
    exp_roi = np.zeros_like(roi_sum)
    shortest = np.inf
    cut = 0
    for i, n in enumerate(names):
        later_recorded = any(done[m].any() for m in names[i + 1 :])
        if n not in started:  # never started: the budget had no room for it
            if later_recorded:
                details.append(f"pass {n} never started, yet a later pass recorded rows")
                lost[...] = True
            cut += h
            continue
        rec = np.broadcast_to(done[n][:, None], (h, w))
        unrecorded = int((~done[n]).sum())
        if unrecorded:
            if _flown_last(done[n], ends[n]) and not later_recorded:
                cut += unrecorded
                details.append(f"pass {n}: the budget ended it {unrecorded} row(s) early")
            else:
                details.append(f"pass {n}: {unrecorded} row(s) skipped, not recorded")
                lost |= ~rec
        no_live = rec & (planned[n] > 0) & (live[n] <= 0)
        if no_live.any():
            details.append(f"pass {n}: {int(no_live.sum())} recorded pixel(s) without live time")
        lost |= no_live
        exp_real += np.where(rec, planned[n], 0.0)
        exp_live += np.where(rec, live[n], 0.0)
        exp_roi += np.where(rec[None], roi[n], 0)
        if rec.any():
            shortest = min(shortest, float(planned[n][rec].min()))
    slack = 0.5 * shortest if np.isfinite(shortest) else 0.0
    doubled = (real_sum > exp_real + slack) | (live_sum > exp_live * (1 + 1e-9) + 1e-12)
    doubled |= np.any(roi_sum > exp_roi, axis=0)
    short = (real_sum < exp_real * (1 - 1e-9)) | (live_sum < exp_live * (1 - 1e-9) - 1e-12)
    short |= np.any(roi_sum < exp_roi, axis=0)
    if doubled.any():
        rows = sorted({int(r) for r in np.nonzero(doubled)[0]})
        details.append(f"{int(doubled.sum())} pixel(s) measured twice (rows {rows})")
    if short.any():
        details.append(f"{int(short.sum())} pixel(s) whose summed data miss a recorded pass")
    lost |= short
    return CubeCheck(
        status=status,
        budget_s=float(budget_s),
        budget_used_s=used,
        rows_complete=[int(done[n].sum()) for n in names],
        rows=h,
        passes_started=len(started),
        lost_pixels=int(lost.sum()),
        doubled_pixels=int(doubled.sum()),
        rows_cut=cut,
        details=details,
    )


@dataclass
class Trial:
    """One kill -9, restart, resume."""

    index: int
    kill_after_rows: int
    """Rows done (all passes) when the kill was armed."""
    delay_s: float
    """Wall seconds after that before the kill."""
    rows_at_kill: int = 0
    """Rows the cube file held right after the kill."""
    pass_at_kill: int = 0
    budget_at_kill_s: float = 0.0
    interrupted: bool = False
    resume_msg: str = ""
    final_state: str = ""
    transitions: list[str] = field(default_factory=list)
    check: CubeCheck | None = None
    charged: bool = False
    """A row recorded after the last budget write was charged at resume."""
    partial: bool = False
    """A row half-written by the killed daemon was found at resume."""
    reopened: bool = False
    """A row marked complete without its data was found at resume (and measured again)."""
    missed: bool = False
    """The scan finished before the kill."""
    wall_s: float = 0.0
    error: str = ""
    cube_file: Path | None = None

    @property
    def ok(self) -> bool:
        c = self.check
        return (
            not self.error
            and self.interrupted
            and self.final_state == "completed"
            and c is not None
            and c.lost_pixels == 0
            and c.doubled_pixels == 0
            and not c.overrun
        )


def _file_state(path: Path) -> tuple[int, int, float]:
    """Rows recorded, the pass being measured, budget used: what the file says after a kill."""
    with h5py.File(path, "r", swmr=True) as f:
        rows = 0
        current = 0
        for n in sorted(f["entry/passes"], key=int):
            done = f[f"entry/passes/{n}/rows_complete"][...]
            rows += int(done.sum())
            if current == 0 and not done.all():
                current = int(n)
        return rows, current, float(f["entry/budget_used_s"][()])


def run_trial(
    work: Path,
    *,
    index: int = 0,
    kill_after_rows: int = 5,
    delay_s: float = 0.0,
    request: dict[str, Any] | None = None,
    resume_with: Callable[[str, str], tuple[bool, str]] | None = None,
) -> Trial:
    """Submit, kill -9 once ``kill_after_rows`` rows are done and ``delay_s`` more wall seconds
    have passed, restart, resume, wait for the end, check the cube file.

    ``resume_with(address, job_id) -> (ok, message)`` resumes the job (default: the ``resume``
    control method with ``{"job_id"}``)."""
    request = dict(request or REQUEST)
    data = Path(work) / f"trial-{index:02d}"
    data.mkdir(parents=True, exist_ok=True)
    trial = Trial(index=index, kill_after_rows=kill_after_rows, delay_s=delay_s)
    t_start = time.monotonic()
    first = Serve(data, data / "serve-1.log")
    try:
        reply = first.client.call("submit", **request)
        job_id, cube = reply["job_id"], Path(reply["cube_file"])
        deadline = time.monotonic() + 60
        while True:
            job = first.client.call("job", job_id=job_id)
            if job["state"] in FINAL or job.get("rows_done_all", 0) >= kill_after_rows:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not reach {kill_after_rows} rows")
            time.sleep(0.002)
        if delay_s > 0:
            time.sleep(delay_s)
        trial.missed = job["state"] in FINAL
        first.kill()
    except BaseException:
        first.kill()
        raise
    trial.cube_file = cube
    trial.rows_at_kill, trial.pass_at_kill, trial.budget_at_kill_s = _file_state(cube)
    second = Serve(data, data / "serve-2.log")
    try:
        job = second.client.call("job", job_id=job_id)
        trial.interrupted = job["state"] == "interrupted"
        if resume_with is None:
            reply = second.client.request("resume", {"job_id": job_id})
            ok, trial.resume_msg = bool(reply.get("success")), str(reply.get("msg", ""))
        else:
            ok, trial.resume_msg = resume_with(second.address, job_id)
        if not ok:
            trial.error = f"resume refused: {trial.resume_msg}"
        else:
            trial.final_state = second.wait_job(job_id)["state"]
    finally:
        second.stop()
    log = second.log()
    trial.charged = "after the last budget write" in log
    trial.partial = "were being written when the writer died" in log
    trial.reopened = "were marked complete without their data" in log
    from dwellwise.daemon.ledger import Ledger

    ledger = Ledger(data)
    try:
        trial.transitions = [state for state, _, _ in ledger.transitions(job_id)]
    finally:
        ledger.close()
    trial.check = check_cube(cube, float(request["budget"]))
    trial.wall_s = time.monotonic() - t_start
    return trial


def _row_wall_s(request: dict[str, Any]) -> float:
    """Rough wall seconds per row of ``request`` (the budget spread over every row)."""
    rows = int(request["shape"][0]) * int(request.get("passes", 2))
    return float(request["budget"]) / float(request["speedup"]) / rows


def run(trials: int = 20, seed: int = 2026, work: Path | None = None) -> list[Trial]:
    """``trials`` trials, each killed after a random number of rows (1 .. all but one) plus a
    random part of a row (seeded)."""
    rng = np.random.default_rng(seed)
    total_rows = int(REQUEST["shape"][0]) * int(REQUEST["passes"])
    row_wall = _row_wall_s(REQUEST)
    out = []
    with tempfile.TemporaryDirectory(prefix="dwellwise-crash-") as tmp:
        base = Path(work) if work is not None else Path(tmp)
        for i in range(trials):
            k = int(rng.integers(1, total_rows))
            delay = float(rng.uniform(0.0, row_wall))
            try:
                trial = run_trial(base, index=i, kill_after_rows=k, delay_s=delay)
            except Exception as exc:
                trial = Trial(index=i, kill_after_rows=k, delay_s=delay)
                trial.error = f"{type(exc).__name__}: {exc}"
            out.append(trial)
            c = trial.check
            print(
                f"trial {i:2d}: kill after {k:2d} rows + {delay * 1e3:5.1f} ms -> "
                f"{trial.rows_at_kill:2d} rows in the file (pass {trial.pass_at_kill}), "
                + (
                    f"{trial.final_state}, lost {c.lost_pixels}, doubled {c.doubled_pixels}, "
                    f"budget {c.budget_used_s:.3f}/{c.budget_s:g} s"
                    if c
                    else trial.error
                )
                + (f", {c.rows_cut} row(s) cut by the budget" if c and c.rows_cut else "")
                + (" [charged]" if trial.charged else "")
                + (" [half-written row]" if trial.partial else ""),
                flush=True,
            )
    return out


def run_baseline(scans: int, work: Path) -> list[CubeCheck]:
    """``scans`` uninterrupted scans of the same request in one daemon (what the budget governor
    does without a crash)."""
    data = Path(work) / "baseline"
    data.mkdir(parents=True, exist_ok=True)
    serve = Serve(data, data / "serve.log")
    checks = []
    try:
        for i in range(scans):
            reply = serve.client.call("submit", **{**REQUEST, "seed": i})
            serve.wait_job(reply["job_id"])
            checks.append(check_cube(reply["cube_file"], float(REQUEST["budget"])))
    finally:
        serve.stop()
    return checks


def table(trials: list[Trial]) -> str:
    """One row per trial."""
    headers = [
        "trial",
        "killed after rows",
        "rows in file at kill",
        "pass at kill",
        "interrupted",
        "final state",
        "rows per pass",
        "rows cut by budget",
        "lost px",
        "doubled px",
        "budget used / budget s",
        "overrun",
        "notes",
    ]
    rows: list[list[object]] = []
    for t in trials:
        c = t.check
        notes = []
        if t.charged:
            notes.append("killed between a row's write and its budget write: row charged")
        if t.partial:
            notes.append("killed inside a row's write")
        if t.reopened:
            notes.append("a row flagged without its data: measured again")
        rows.append(
            [
                t.index,
                f"{t.kill_after_rows} + {t.delay_s * 1e3:.0f} ms",
                t.rows_at_kill,
                t.pass_at_kill or "-",
                "yes" if t.interrupted else "no",
                t.final_state or t.error or "-",
                "/".join(str(n) for n in c.rows_complete) if c else "-",
                c.rows_cut if c else "-",
                c.lost_pixels if c else "-",
                c.doubled_pixels if c else "-",
                f"{c.budget_used_s:.2f} / {c.budget_s:g}" if c else "-",
                ("yes" if c.overrun else "no") if c else "-",
                "; ".join(notes) or "",
            ]
        )
    return markdown_table(headers, rows)


def summary(trials: list[Trial], baseline: list[CubeCheck] | None = None) -> dict[str, Any]:
    checked = [t.check for t in trials if t.check is not None]
    out: dict[str, Any] = {
        "trials": len(trials),
        "job interrupted after the restart": sum(t.interrupted for t in trials),
        "resumed to completion": sum(t.final_state == "completed" for t in trials),
        "lost pixels": sum(c.lost_pixels for c in checked),
        "doubled pixels": sum(c.doubled_pixels for c in checked),
        "budget overruns": sum(c.overrun for c in checked),
        "max budget used / budget": max((c.budget_used_s / c.budget_s for c in checked), default=0),
        "scans with rows cut by the budget": sum(c.rows_cut > 0 for c in checked),
        "kills between a row's write and its budget write (row charged at resume)": sum(
            t.charged for t in trials
        ),
        "kills inside a row's write (half-written row found at resume)": sum(
            t.partial for t in trials
        ),
        "rows flagged complete without their data (measured again at resume)": sum(
            t.reopened for t in trials
        ),
        "errors": sum(bool(t.error) for t in trials),
    }
    if baseline:
        out["baseline: uninterrupted scans"] = len(baseline)
        out["baseline: scans with rows cut by the budget"] = sum(c.rows_cut > 0 for c in baseline)
        out["baseline: lost / doubled pixels, overruns"] = (
            f"{sum(c.lost_pixels for c in baseline)} / {sum(c.doubled_pixels for c in baseline)}"
            f" / {sum(c.overrun for c in baseline)}"
        )
    return out


def main(quick: bool = False) -> int:
    """20 trials (3 with ``quick``) and 5 uninterrupted scans (2); prints the tables, records
    them unless ``quick``; exit code 1 if a pixel was lost or doubled, the budget overran, or a
    trial did not resume to completion."""
    n = 3 if quick else 20
    started = time.monotonic()
    trials = run(trials=n)
    with tempfile.TemporaryDirectory(prefix="dwellwise-crash-base-") as tmp:
        baseline = run_baseline(2 if quick else 5, Path(tmp))
    wall = time.monotonic() - started
    s = summary(trials, baseline)
    totals = markdown_table(["figure", "value"], [[k, _fmt(v)] for k, v in s.items()])
    req = REQUEST
    body = (
        "## Crash safety: kill -9, restart, resume (`python -m dwellwise.benchmarks.crash_resume`)\n\n"
        f"{n} trials. Each starts `dwellwise serve` as a process, submits an adaptive scan "
        f"({req['scene']} {req['shape'][0]}×{req['shape'][1]}, {req['passes']} passes, "
        f"budget {req['budget']:g} s, t0 {req['t0'] * 1e3:g} ms, speedup {req['speedup']:g}), "
        "sends SIGKILL after a random number of rows plus a random part of a row (seed 2026), "
        "restarts the daemon on the same data directory, resumes the job by id and checks the "
        "cube file. Lost pixels: a pixel a started pass skipped, or one the file calls recorded "
        "without its data. Doubled pixels: summed real time above the planned dwells by more "
        "than half the shortest dwell, or summed live time or ROI counts above the passes' own. "
        "Budget overrun: `/entry/budget_used_s` above the budget. Rows cut by the budget: the "
        "last rows of the last pass that the budget governor left out (uninterrupted scans do "
        f"it too: see the baseline). {wall:.0f} s of wall time.\n\n"
        + totals
        + "\n\n"
        + table(trials)
    )
    print(totals)
    print()
    print(table(trials))
    if not quick:
        print(f"recorded in {record_section('crash-resume', body)}")
    bad = s["lost pixels"] or s["doubled pixels"] or s["budget overruns"] or s["errors"]
    bad = bad or s["resumed to completion"] != n or s["job interrupted after the restart"] != n
    return 1 if bad else 0


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 trials, not recorded")
    raise SystemExit(main(quick=parser.parse_args().quick))
