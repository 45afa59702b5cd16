"""``dwellwise demo``: the whole product in one command.

Starts the daemon in-process on free loopback ports with the simulated beamline, submits an
adaptive scan of a painting through the control socket, follows it on the event socket with the
console's progress bar, then leaves the cube file and PNGs (element maps, dwell maps, budget
timeline) in the output folder and prints a one-screen summary.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import h5py
import numpy as np
from dwellwise.daemon.client import ControlClient
from dwellwise.daemon.config import DaemonConfig
from dwellwise.daemon.console import watch
from dwellwise.daemon.server import Daemon
from dwellwise.planners.plans import COMPUTE_SHARE

DEMO_REQUEST: dict[str, Any] = {
    "scene": "astronaut",
    "shape": [32, 32],
    "pixel_size": 0.5,
    "budget": 60.0,
    "t0": 0.005,
    "policy": "auto",
    "passes": 2,
    "mode": "adaptive",
    "speedup": 5.0,
    "seed": 0,
}
"""The demo scan: a 32×32 region of the astronaut painting in one simulated minute."""


@dataclass(frozen=True)
class DemoResult:
    """What the demo leaves behind."""

    job: dict[str, Any]
    """The job's final record from the daemon."""
    cube_file: Path
    """The scan's cube file."""
    pngs: list[Path]
    """Element maps, dwell maps and the budget timeline."""


def run_demo(
    out: Path, *, request: dict[str, Any] | None = None, bar_out: TextIO | None = None
) -> DemoResult:
    """Run the demo scan through an in-process daemon; files go to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    req = {**DEMO_REQUEST, **(request or {})}
    config = DaemonConfig().with_overrides(
        control="tcp://127.0.0.1:0",
        events="tcp://127.0.0.1:0",
        documents="tcp://127.0.0.1:0",
        data_dir=out,
    )
    with Daemon(config) as daemon:  # entering starts it; leaving shuts it down
        client = ControlClient(daemon.addresses["control"], timeout=10.0)
        job_id = client.call("submit", **req)["job_id"]
        job = watch(client, job_id, events=daemon.addresses["events"], bar_out=bar_out)
        job = client.call("job", job_id=job_id) if job is None else job
    cube = Path(job["cube_file"])
    return DemoResult(job=job, cube_file=cube, pngs=save_pngs(cube, out, req))


def save_pngs(cube: Path, out: Path, request: dict[str, Any]) -> list[Path]:
    """Element maps (ROI rates), the dwell map of each pass and the budget timeline."""
    from dwellwise.plots import save_budget_timeline, save_dwell_maps, save_element_maps
    from dwellwise.scan_cli import estimated_roi_rates

    stem = cube.stem
    with h5py.File(cube, "r") as f:
        elements = [e.decode() for e in f["entry/rois/elements"][...]]
        rates = estimated_roi_rates(f)
        passes = sorted(f["entry/passes"], key=int)
        dwell = [f[f"entry/passes/{n}/dwell_planned"][...] for n in passes]
        ends = [f[f"entry/passes/{n}/row_end_s"][...] for n in passes]
    scene = request.get("scene", "")
    return [
        save_element_maps(
            rates,
            elements,
            out / f"{stem}_elements.png",
            title=f"{scene}: ROI rates",
            unit="counts/s",
        ),
        save_dwell_maps(dwell, out / f"{stem}_dwell.png", title=f"{scene}: planned dwell"),
        save_budget_timeline(
            ends,
            float(request["budget"]),
            out / f"{stem}_timeline.png",
            title=f"{scene}: budget timeline",
        ),
    ]


def summary_lines(result: DemoResult) -> list[str]:
    """A one-screen summary of the demo scan."""
    job = result.job
    lines = [
        f"job {job['job_id']}: {job['state']}" + (f" ({job['error']})" if job.get("error") else "")
    ]
    with h5py.File(result.cube_file, "r") as f:
        used = float(f["entry/budget_used_s"][()])
        budget = float(job.get("budget_s") or job["request"]["budget"])
        lines.append(f"instrument time used: {used:.1f} s of the {budget:g} s budget")
        for n in sorted(f["entry/passes"], key=int):
            g = f[f"entry/passes/{n}"]
            done = g["rows_complete"][...]
            planned = g["dwell_planned"][...]
            mean = float(planned[done].mean()) * 1e3 if done.any() else 0.0
            lines.append(f"pass {n}: {int(done.sum())}/{done.size} rows, mean dwell {mean:.1f} ms")
        if "entry/truth" in f:
            from dwellwise.scan_cli import estimated_roi_rates

            err = estimated_roi_rates(f) - f["entry/truth/roi_rates"][...]
            rmse = float(np.sqrt(np.mean(err**2, axis=(1, 2))).sum())
            lines.append(
                f"ROI-rate RMSE against the truth (sum over elements): {rmse:.4g} counts/s"
            )
    lines += _compute_lines(job)
    lines.append(f"cube file: {result.cube_file}")
    lines += [f"picture:   {p}" for p in result.pngs]
    return lines


def _compute_lines(job: dict[str, Any]) -> list[str]:
    """Which policy planned the later passes, and what the compute between passes cost."""
    used = job.get("policy") or "-"
    asked = (job.get("request") or {}).get("policy")
    line = f"dwell policy: {used}"
    if job.get("fell_back"):
        line += f" ({asked} did not answer within its compute deadline: the fallback did)"
    elif asked == "auto" and used == "blindspot-sqrt":
        line += (
            " (auto: training the network did not fit this short scan's compute deadline,"
            f" {COMPUTE_SHARE:.0%} of the budget; it trains on longer scans, or ask for n2v-sqrt)"
        )
    lines = [line]
    if job.get("train_device") not in (None, "", "-"):
        lines.append(f"network trained on {job['train_device']} in {float(job.get('train_s') or 0):.2f} s")
    if job.get("compute_s") is not None:
        lines.append(f"compute between passes: {float(job['compute_s']):.2f} s of instrument time")
    return lines


def main(out: Path, request: dict[str, Any] | None = None) -> int:
    """The ``dwellwise demo`` command."""
    result = run_demo(out, request=request)
    print("\n".join(summary_lines(result)), file=sys.stdout)
    return 0 if result.job["state"] == "completed" else 1
