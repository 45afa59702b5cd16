"""``dwellwise bench zaber``: what the Zaber serial line costs, against the pty emulator.

The emulator runs in its own process (as a controller would: no shared interpreter lock with
the host) and spends the wire time of 115200 baud on its clock. Two tables:

* **round trip per command**: single ``get pos`` requests (write, wait for the reply carrying the
  message id) and pipelined batches of 16, median and 99th percentile wall milliseconds;
* **fly rows**: rows of 16, 64 and 256 pixels, uniform dwell and adaptive (random) dwell, flown
  by :class:`~dwellwise.drivers.zaber.ZaberStage`: serial commands per row (everything: y step,
  stream, position samples, readback), stream segments, planned versus measured motion, the time
  the segment merging adds, and the software time per row (wall time of ``set(row)`` beyond the
  motion).

Full run: speedup 1 (real time), 2000 round trips; ``quick``: speedup 10, 200 round trips, not
recorded.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
from dwellwise.benchmarks.results import markdown_table, record_section
from dwellwise.drivers.fly import FlyRow
from dwellwise.drivers.zaber import ZaberStage
from dwellwise.simulators.clock import ScaledClock

PITCH_MM = 0.5
T0_S = 0.005
WIDTHS = (16, 64, 256)


class EmulatorProcess:
    """``python -m dwellwise.simulators.zaber_emulator`` in a child process; yields its port."""

    def __init__(self, speedup: float, wire_baud: float = 115200.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dwellwise.simulators.zaber_emulator", "--homed", "--speedup", str(speedup),
             "--wire-baud", str(wire_baud)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = self.proc.stdout.readline().strip()
        if not self.port:
            self.close()
            raise RuntimeError("the Zaber emulator process did not start")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def round_trips(stage: ZaberStage, n: int, batch: int = 16) -> dict[str, float]:
    """Wall ms per command: single requests and pipelined batches of ``batch``."""
    link = stage.link
    single = []
    for _ in range(n):
        t = time.perf_counter()
        link.request(1, 1, "get pos", where="bench")
        single.append(time.perf_counter() - t)
    piped = []
    for _ in range(max(1, n // batch)):
        t = time.perf_counter()
        link.request_batch([(1 + k % 2, 1, "get pos") for k in range(batch)], where="bench")
        piped.append((time.perf_counter() - t) / batch)
    s, p = np.array(single) * 1e3, np.array(piped) * 1e3
    return {
        "single_median_ms": float(np.median(s)),
        "single_p99_ms": float(np.percentile(s, 99)),
        "batch_median_ms": float(np.median(p)),
        "batch_p99_ms": float(np.percentile(p, 99)),
    }


def fly_rows(stage: ZaberStage, widths=WIDTHS, repeats: int = 2, seed: int = 0) -> list[dict]:
    """Fly rows of each width, uniform and adaptive dwell; one result per (width, kind)."""
    stage.forget_rows()
    rng = np.random.default_rng(seed)
    speed = stage.clock.speedup
    out = []
    k = 0
    for width in widths:
        for kind in ("uniform", "adaptive"):
            recs, walls = [], []
            for _ in range(repeats):
                dwell = np.full(width, T0_S) if kind == "uniform" else rng.uniform(T0_S, 6 * T0_S, width)
                origin = 0.3 * (k % 7)  # each row needs an approach, like a scan
                row = FlyRow(1, k, PITCH_MM * (k % 20), origin + PITCH_MM * np.arange(width), dwell, reverse=bool(k % 2))
                k += 1
                t = time.perf_counter()
                stage.set(row).wait(600)
                walls.append(time.perf_counter() - t)
                recs.append(stage.rows_log[-1])
            out.append(
                {
                    "width": width,
                    "kind": kind,
                    "commands": int(np.max([r.commands for r in recs])),
                    "segments": int(np.max([r.segments for r in recs])),
                    "queued_first": int(np.min([r.queued_first for r in recs])),
                    "planned_s": float(np.mean([r.planned_s for r in recs])),
                    "measured_s": float(np.mean([r.measured_s for r in recs])),
                    "added_s": float(np.mean([r.added_s for r in recs])),
                    "software_ms": float(
                        np.mean([w - r.measured_s / speed for w, r in zip(walls, recs, strict=True)]) * 1e3
                    ),
                    "deviation_ms": float(np.max([r.deviation_s for r in recs]) * 1e3),
                }
            )
    return out


def main(quick: bool = False) -> int:
    speedup = 10.0 if quick else 1.0
    n = 200 if quick else 2000
    started = time.perf_counter()
    bare = EmulatorProcess(1.0, wire_baud=0)  # no wire time: what the software alone costs
    try:
        stage = ZaberStage("stage", bare.port, clock=ScaledClock(1.0))
        try:
            rt_bare = round_trips(stage, n)
        finally:
            stage.close()
    finally:
        bare.close()
    emu = EmulatorProcess(speedup)
    try:
        stage = ZaberStage("stage", emu.port, clock=ScaledClock(speedup))
        try:
            rt = round_trips(stage, n)
            stage.x.move(0.0)
            rows = fly_rows(stage, repeats=1 if quick else 3)
            stage.max_segments = 16
            rows16 = fly_rows(stage, widths=(64, 256), repeats=1 if quick else 3, seed=0)
            rows16 = [r for r in rows16 if r["kind"] == "adaptive"]
        finally:
            stage.close()
    finally:
        emu.close()
    rt_table = markdown_table(
        ["request", "median ms/command", "p99 ms/command"],
        [
            ["single `get pos`, 115200 baud", f"{rt['single_median_ms']:.3f}", f"{rt['single_p99_ms']:.3f}"],
            ["pipelined, 16 in a batch, 115200 baud", f"{rt['batch_median_ms']:.3f}", f"{rt['batch_p99_ms']:.3f}"],
            ["single `get pos`, no wire time (software only)", f"{rt_bare['single_median_ms']:.3f}",
             f"{rt_bare['single_p99_ms']:.3f}"],
            ["pipelined, no wire time", f"{rt_bare['batch_median_ms']:.3f}", f"{rt_bare['batch_p99_ms']:.3f}"],
        ],
    )
    row_table = markdown_table(
        ["pixels", "dwell", "max segments", "commands/row", "segments", "queued before release",
         "planned motion s", "measured s",
         "added by merging s", "software ms/row (wall)", "max timing deviation ms"],
        [
            [r["width"], r["kind"], ms, r["commands"], r["segments"], r["queued_first"], f"{r['planned_s']:.4f}",
             f"{r['measured_s']:.4f}", f"{max(r['added_s'], 0.0):.4f}", f"{r['software_ms']:.1f}", f"{r['deviation_ms']:.2f}"]
            for ms, group in ((64, rows), (16, rows16))
            for r in group
        ],
    )
    intro = (
        f"Emulator in a child process on a pty, wire time of 115200 baud (10 bits a byte, full "
        f"duplex) spent on its clock, speedup {speedup:g}; `ZaberStage` with message ids and "
        f"checksums. {n} single round trips; the same without wire time shows the software's "
        "share (host driver + emulator + pty). "
        f"Fly rows: pitch {PITCH_MM} mm, uniform dwell {T0_S * 1e3:g} ms or adaptive U({T0_S * 1e3:g}, "
        f"{6 * T0_S * 1e3:g}) ms, each row with an approach and a y step; worst of "
        f"{1 if quick else 3} rows for commands and segments, means otherwise. Commands per row "
        "= y step + stream (cork, approach, wait, 2 per segment) + uncork + 2 position samples + "
        "readback. A uniform row is 1 segment whatever its width; an adaptive row is at most "
        "`max_segments` segments (64 by default, 16 for comparison), and neighbouring pixel groups "
        "are merged while a merge adds less time than sending one more segment costs (2 commands "
        "at the measured pipelined time per command); 'added' is what merging adds to the row. "
        "Once the time per command is known, only the first segments are queued before the "
        "stream is released and the rest follow while the stage moves (fewest shown); software "
        "ms/row = wall time of `set(row)` minus the measured motion.\n\n"
    )
    body = "### Round trip per command\n\n" + rt_table + "\n\n### Fly rows\n\n" + row_table
    print("## Zaber serial line\n\n" + intro + body + "\n", flush=True)
    if not quick:
        record_section("zaber", "## Zaber stage over the serial line (`dwellwise bench zaber`)\n\n" + intro + body)
    print(f"zaber benchmark: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(quick="--quick" in sys.argv))
