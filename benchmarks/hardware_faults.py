"""``dwellwise bench hardware-faults``: device faults injected during scans through the daemon.

A daemon runs in this process (:class:`~dwellwise.daemon.server.Daemon` on free loopback ports,
no trainer process) configured with real-device drivers against the emulators, and runs scan
after scan while faults are injected between rows:

* **Zaber** (``[devices.stage] kind = "zaber"`` on the pty emulator at 10× real time, a simulated
  detector beside it): no reply, garbled reply, rejected command (``line abs`` refused with
  ``BADDATA``), a limit switch hit mid-row (``WL``), a stall mid-row (``FS``);
* **EPICS** (``[devices.sdd] kind = "epics-mca"`` on the caproto IOC, which counts in real time,
  gated by the simulated stage): no reply (the IOC hangs), garbled reply (a spectrum of the wrong
  length), rejected write (``.PRTM`` refused; the next pixel is made to write its preset), a
  stalled acquisition (``.ACQG`` never drops).

A row listener on the daemon's stage arms the next fault when a row ends (one fault armed at a
time, never after the scan's last row), round-robin over the kinds that still need faults. No
reply and garbled replies last until cleared, so they outlast the drivers' retries; a rejection
is one-shot; a limit or stall waits at a position every row crosses. The benchmark watches the
job over the control socket: when the fault pauses it, it checks the job's error names the device
and the cause, clears the fault and sends ``resume``; the row flies again. A fault the scan ended
before reaching is cleared and counted as not triggered (it does not count towards the goal).

After each scan: the job must be ``completed``; its cube's complete rows must be exactly the rows
the ledger's timeline counted (``rows_done_all``), every pass but the last complete, live time
only in complete rows and the summed live time exactly the passes' (a row written twice or half
of one breaks that); the daemon must still answer ``ping`` with its runner thread alive. The
``log`` topic must carry one "paused by a device fault" line per pause.

Full run: 50 faults of each kind (``quick``: 3 of each, not recorded). Prints the table and
records it in ``benchmarks/RESULTS.md`` (section ``hardware-faults``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from dwellwise.benchmarks.results import markdown_table, record_section
from dwellwise.daemon.client import ControlClient, EventStream
from dwellwise.daemon.config import DaemonConfig
from dwellwise.daemon.server import Daemon
from dwellwise.simulators.clock import ScaledClock
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.mca_ioc import McaIoc, UniformMaterial
from dwellwise.simulators.zaber_emulator import ZaberEmulator

ZABER_SPEEDUP = 10.0
"""Instrument seconds per wall second of the Zaber emulator (and the daemon's stage clock)."""
PITCH_MM = 0.5
ZABER_JOB = {"shape": [10, 12], "pixel_size": PITCH_MM, "budget": 120.0, "t0": 0.006, "policy": "bilevel"}
"""A two-pass adaptive scan on the emulated stage (about 12 s of wall time without faults; the
budget leaves room for the faults: a fault's time until the job pauses is scan time (the drivers'
timeouts and the stop the RunEngine sends before it pauses), and the emulator's speedup makes
those wall seconds 10 times longer)."""
EPICS_JOB = {"shape": [10, 4], "pixel_size": PITCH_MM, "budget": 8.0, "t0": 0.01, "passes": 1}
"""One uniform pass on the real-time IOC (each pixel one acquisition; about 1 s of wall time)."""
ELEMENTS = ["Ca_K", "Fe_K", "Pb_L"]
AXIS = EnergyAxis(channels=1024, gain_kev=0.04, offset_kev=0.0)
FINAL = ("completed", "failed", "aborted", "interrupted")


@dataclass
class Kind:
    """One kind of fault: how to inject and clear it, and what its report must say."""

    name: str
    device: str
    """Who must be named: ``stage x (device 1 axis 1)``-style or ``SDD 'sdd'``."""
    cause: tuple[str, ...]
    """Words the job's error must contain (all of them)."""
    inject: Callable[[], None] = field(repr=False)
    clear: Callable[[], None] = field(repr=False)
    target: int = 0
    armed: int = 0
    paused: int = 0
    reported: int = 0
    """Pauses whose error named the device and the cause."""
    not_triggered: int = 0


@dataclass
class Totals:
    jobs: int = 0
    completed: int = 0
    other_faults: int = 0
    """Pauses for faults nobody injected (e.g. a row the loaded host streamed too late)."""
    other_examples: list[str] = field(default_factory=list)
    rows: int = 0
    lost_rows: int = 0
    doubled_rows: int = 0
    crashes: int = 0
    problems: list[str] = field(default_factory=list)


class Injector:
    """Row listener on the daemon's stage: arms the next fault when a row ends."""

    def __init__(self, kinds: list[Kind], rows: int, passes: int) -> None:
        self.kinds = kinds
        self.rows, self.passes = rows, passes
        self.lock = threading.Lock()
        self.armed: Kind | None = None
        self.done_in_pass: Counter[int] = Counter()
        self.rr = 0

    def new_job(self) -> None:
        with self.lock:
            self.done_in_pass.clear()

    def row_started(self, gates) -> None:
        pass

    def row_aborted(self, gates) -> None:
        pass

    def row_finished(self, gates) -> None:
        with self.lock:
            self.done_in_pass[gates.pass_number] += 1
            last = gates.pass_number == self.passes and self.done_in_pass[gates.pass_number] >= self.rows - 1
            if self.armed is not None or last:
                return
            todo = [k for k in self.kinds if k.armed < k.target]
            if not todo:
                return
            kind = todo[self.rr % len(todo)]
            self.rr += 1
            kind.armed += 1
            self.armed = kind
            kind.inject()

    def take(self) -> Kind | None:
        """The armed fault (now cleared), if any."""
        with self.lock:
            kind, self.armed = self.armed, None
        if kind is not None:
            kind.clear()
        return kind


def zaber_kinds(emu: ZaberEmulator, offset_mm: float, width: int) -> list[Kind]:
    """The Zaber faults; limit and stall positions inside every row (device mm)."""
    mid = offset_mm + (width - 1) * PITCH_MM / 2 + PITCH_MM / 4
    where = "stage x (device 1 axis 1)"

    def clear_positions() -> None:
        with emu._lock:  # noqa: SLF001 - the emulator's own lock guards its fault tables
            emu.faults.limit_at.pop(1, None)
            emu.faults.stall_at.pop(1, None)
            emu.faults.rejections.clear()

    return [
        Kind("no reply", "stage ", ("no reply",),
             lambda: emu.inject_no_reply(1_000_000), lambda: emu.inject_no_reply(0)),
        Kind("garbled reply", "stage ", ("garbled reply",),
             lambda: emu.inject_garbled(1_000_000), lambda: emu.inject_garbled(0)),
        Kind("rejected command", "stage ", ("rejected", "BADDATA"),
             lambda: emu.inject_rejection("line abs", "BADDATA", 1), clear_positions),
        Kind("limit hit mid-row", where, ("unexpected limit switch hit (WL)",),
             lambda: emu.inject_limit_hit(1, mid), clear_positions),
        Kind("stall mid-row", where, ("stalled and stopped (FS)",),
             lambda: emu.inject_stall(1, mid), clear_positions),
    ]  # fmt: skip


def epics_kinds(ioc: McaIoc, daemon: Daemon) -> list[Kind]:
    f = ioc.faults
    pv = ioc.record_name

    def reject() -> None:
        f.reject_presets = True
        daemon.devices.sdd._preset_written = None  # noqa: SLF001 - the driver skips unchanged presets

    def set_flag(name: str, value: bool):
        return lambda: setattr(f, name, value)

    return [
        Kind("no reply", f"SDD 'sdd': {pv}.", ("no reply",), ioc.hang, ioc.answer),
        Kind("garbled reply", f"SDD 'sdd': {pv}.VAL", ("garbled spectrum",),
             set_flag("short_spectrum", True), set_flag("short_spectrum", False)),
        Kind("rejected write", f"SDD 'sdd': {pv}.PRTM", ("refused",),
             reject, set_flag("reject_presets", False)),
        Kind("stalled acquisition", f"SDD 'sdd': {pv}.ACQG", ("stalled",),
             set_flag("stall", True), set_flag("stall", False)),
    ]  # fmt: skip


def daemon_config(data_dir: Path, devices: dict) -> DaemonConfig:
    config = DaemonConfig.model_validate({"devices": devices})
    return config.with_overrides(
        control="tcp://127.0.0.1:0",
        events="tcp://127.0.0.1:0",
        documents="tcp://127.0.0.1:0",
        data_dir=data_dir,
        status_interval=5.0,
    )


def check_job(job: dict, rows: int, totals: Totals) -> None:
    """Lost or doubled rows of a finished job (see the module docstring)."""
    with h5py.File(job["cube_file"], "r") as f:
        passes = job["passes"]
        recorded, live_sum = 0, 0.0
        for k in range(1, passes + 1):
            g = f[f"entry/passes/{k}"]
            done = g["rows_complete"][...].astype(bool)
            live = g["live_time"][...]
            recorded += int(done.sum())
            if k < passes and not done.all():
                totals.problems.append(f"{job['job_id']}: pass {k} misses rows {np.flatnonzero(~done)}")
                totals.lost_rows += int((~done).sum())
            partial = int(np.sum(~done & np.any(live > 0, axis=1)))
            totals.doubled_rows += partial
            live_sum = live_sum + live
        summed = f["entry/data/live_time"][...]
        mismatch = int(np.sum(~np.all(np.isclose(summed, live_sum, rtol=1e-9, atol=0), axis=1)))
        totals.doubled_rows += mismatch
        used = float(f["entry/budget_used_s"][()])
    counted = int(job["rows_done_all"])
    totals.rows += recorded
    totals.lost_rows += abs(counted - recorded)
    if counted != recorded:
        totals.problems.append(f"{job['job_id']}: ledger counted {counted} rows, the cube holds {recorded}")
    if used > float(job["request"]["budget"]) + 1e-9:
        totals.problems.append(f"{job['job_id']}: budget overrun {used:.4g} s")


def alive(client: ControlClient, daemon: Daemon) -> bool:
    try:
        client.call("ping")
    except Exception:  # noqa: BLE001 - not answering is what is counted
        return False
    return daemon.runner is not None and daemon.runner._thread.is_alive()  # noqa: SLF001


def run_jobs(daemon: Daemon, injector: Injector, job: dict, totals: Totals, *, timeout_s: float) -> None:
    """Scans until every kind has reached its target (or nothing can be armed any more)."""
    client = ControlClient(daemon.addresses["control"], timeout=15)
    kinds = injector.kinds
    deadline = time.monotonic() + timeout_s
    while any(k.paused < k.target for k in kinds):
        if time.monotonic() > deadline:
            totals.problems.append(f"gave up after {timeout_s:.0f} s")
            return
        injector.new_job()
        job_id = client.call("submit", **job)["job_id"]
        totals.jobs += 1
        updated = None
        while True:
            view = client.call("job", job_id=job_id)
            if view["state"] in FINAL:
                break
            if view["state"] != "paused" or view["updated"] == updated:
                time.sleep(0.005)
                continue
            updated = view["updated"]
            kind = injector.take()
            error = view["error"] or ""
            if kind is not None and all(c in error for c in kind.cause):
                kind.paused += 1
                kind.reported += int(kind.device in error and error.startswith("device fault: "))
            else:
                totals.other_faults += 1
                if len(totals.other_examples) < 3:
                    totals.other_examples.append(error)
                if kind is not None:  # its own fault did not show yet: arm it again later
                    kind.armed -= 1
            reply = client.request("resume", {"job_id": job_id})
            if not reply["success"]:
                totals.problems.append(f"{job_id}: resume refused: {reply['msg']}")
            while client.call("job", job_id=job_id)["updated"] == updated:
                time.sleep(0.002)
        left = injector.take()
        if left is not None:
            left.not_triggered += 1
            left.armed -= 1
        totals.completed += int(view["state"] == "completed")
        if view["state"] != "completed":
            totals.problems.append(f"{job_id}: {view['state']} ({view['error']})")
        else:
            check_job(view, job["shape"][0], totals)
        if not alive(client, daemon):
            totals.crashes += 1
            totals.problems.append("the daemon stopped answering")
            return


class LogWatch:
    """Counts the ``log`` topic's "paused by a device fault" lines."""

    def __init__(self, address: str) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._stream = EventStream(address, topics=("log",))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self._stream.next(timeout=0.1)
            if event is not None and "paused by a device fault" in event[1].get("msg", ""):
                self.count += 1

    def close(self) -> None:
        time.sleep(0.3)  # the last lines in flight
        self._stop.set()
        self._thread.join(2)
        self._stream.close()


def zaber_soak(tmp: Path, n: int, totals: Totals) -> tuple[list[Kind], int]:
    with ZaberEmulator(clock=ScaledClock(ZABER_SPEEDUP), homed=True) as emu:
        stage = {"kind": "zaber", "port": emu.port, "clock_speedup": ZABER_SPEEDUP,
                 "timeout_s": 0.1, "retries": 1}  # fmt: skip
        with Daemon(daemon_config(tmp / "zaber", {"stage": stage}), trainer=False) as daemon:
            watch = LogWatch(daemon.addresses["events"])
            kinds = zaber_kinds(emu, daemon.devices.stage.offset_mm[0], ZABER_JOB["shape"][1])
            for k in kinds:
                k.target = n
            injector = Injector(kinds, ZABER_JOB["shape"][0], 2)
            daemon.devices.stage.subscribe_rows(injector)
            run_jobs(daemon, injector, ZABER_JOB, totals, timeout_s=600)
            watch.close()
        crashed = not daemon.wait(30)
    totals.crashes += int(crashed)
    return kinds, watch.count


def epics_soak(tmp: Path, n: int, totals: Totals) -> tuple[list[Kind], int]:
    saved = {k: os.environ.get(k) for k in ("EPICS_CA_ADDR_LIST", "EPICS_CA_AUTO_ADDR_LIST")}
    source = UniformMaterial({"Ca_K": 3000.0, "Fe_K": 5000.0, "Pb_L": 4000.0}, axis=AXIS)
    ioc = McaIoc("SOAK:", source=source, seed=7).start()
    try:
        sdd = {"kind": "epics-mca", "prefix": ioc.record_name, "elements": ELEMENTS,
               "ca_addr_list": [f"{ioc.host}:{ioc.port}"], "timeout_s": 0.3,
               "acquisition_margin_s": 0.2}  # fmt: skip
        with Daemon(daemon_config(tmp / "epics", {"sdd": sdd}), trainer=False) as daemon:
            watch = LogWatch(daemon.addresses["events"])
            kinds = epics_kinds(ioc, daemon)
            for k in kinds:
                k.target = n
            injector = Injector(kinds, EPICS_JOB["shape"][0], 1)
            daemon.devices.stage.subscribe_rows(injector)
            run_jobs(daemon, injector, EPICS_JOB, totals, timeout_s=600)
            watch.close()
        crashed = not daemon.wait(30)
    finally:
        ioc.answer()
        ioc.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    totals.crashes += int(crashed)
    return kinds, watch.count


def main(quick: bool = False) -> int:
    """50 faults of each kind (3 with ``quick``); prints the table, records it unless ``quick``;
    exit code 1 if a goal is missed (a crash, a lost or doubled row, a fault not reported with
    its device and cause, a job that did not complete, a kind short of its faults)."""
    n = 3 if quick else 50
    started = time.monotonic()
    rows_out: list[list[Any]] = []
    results = []
    out = sys.stdout
    # the RunEngine prints every pause and the IOC logs every refused write with a traceback
    logging.getLogger("caproto").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="dwellwise-hwfaults-") as tmp:
        for name, soak in (("Zaber", zaber_soak), ("EPICS", epics_soak)):
            totals = Totals()
            t0 = time.monotonic()
            print(f"{name}: {n} faults of each kind ...", file=out, flush=True)
            with contextlib.redirect_stdout(io.StringIO()):
                kinds, logged = soak(Path(tmp), n, totals)
            wall = time.monotonic() - t0
            results.append((name, kinds, totals, logged, wall))
            for k in kinds:
                rows_out.append([
                    name, k.name, k.paused, f"{k.reported}/{k.paused}", k.not_triggered,
                ])  # fmt: skip
    total_wall = time.monotonic() - started
    headers = ["device", "fault", "faults (job paused)", "reported with device + cause", "armed, not reached"]
    table = markdown_table(headers, rows_out)
    summary_rows = []
    ok = True
    for name, kinds, t, logged, wall in results:
        pauses = sum(k.paused for k in kinds) + t.other_faults
        summary_rows.append([
            name, t.jobs, t.completed, t.rows, t.lost_rows, t.doubled_rows, t.crashes,
            t.other_faults, f"{logged}/{pauses}", f"{wall:.0f}",
        ])  # fmt: skip
        short = [k.name for k in kinds if k.paused < k.target]
        unreported = sum(k.paused - k.reported for k in kinds)
        if t.crashes or t.lost_rows or t.doubled_rows or unreported or short or t.completed != t.jobs:
            ok = False
        if logged != pauses:
            ok = False
            t.problems.append(f"log topic carried {logged} pause lines for {pauses} pauses")
        if short:
            t.problems.append(f"short of faults: {', '.join(short)}")
    summary = markdown_table(
        ["part", "scans", "completed", "rows recorded", "lost rows", "doubled rows",
         "daemon crashes", "other faults (resumed)", "log lines / pauses", "wall s"],
        summary_rows,
    )  # fmt: skip
    print(table)
    print()
    print(summary)
    notes = []
    for name, _, t, _, _ in results:
        for p in t.problems[:10]:
            notes.append(f"- {name}: {p}")
        for e in t.other_examples:
            notes.append(f"- {name}, a fault nobody injected: `{e[:300]}`")
    if notes:
        print("\n".join(notes))
    print(f"{'all goals met' if ok else 'GOALS MISSED'}; {total_wall:.0f} s of wall time")
    if not quick:
        body = (
            "## Device faults during scans (`dwellwise bench hardware-faults`)\n\n"
            "A daemon in the benchmark's process runs scan after scan on real-device drivers "
            "against the emulators while faults are injected between rows (one at a time, "
            f"round-robin over the kinds): **Zaber** stage on the pty emulator at "
            f"{ZABER_SPEEDUP:g}× real time with a simulated detector (adaptive "
            f"{ZABER_JOB['shape'][0]}×{ZABER_JOB['shape'][1]}, 2 passes, budget "
            f"{ZABER_JOB['budget']:g} s; timeout 0.1 s, 1 retry), **EPICS** MCA detector on the "
            f"caproto IOC at real time gated by the simulated stage ({EPICS_JOB['shape'][0]}×"
            f"{EPICS_JOB['shape'][1]}, one pass of {EPICS_JOB['t0'] * 1e3:g} ms; timeouts 0.3 s, "
            "stall margin 0.2 s). Each fault must pause the job with an error naming the device "
            "and the cause; the benchmark clears it and resumes, and the row flies again. After "
            "each scan: the job completed; the cube's complete rows equal the rows the ledger's "
            "timeline counted (lost rows), no row written twice or in part (doubled rows: live "
            "time outside complete rows or summed live time not the passes' sum); the daemon "
            "answers `ping` with its runner alive (crashes); the `log` topic carries one line "
            f"per pause. {n} faults of each kind; {total_wall:.0f} s of wall time on "
            f"{os.cpu_count()} CPU threads.\n\n" + table + "\n\n" + summary
        )
        if notes:
            body += "\n\n" + "\n".join(notes)
        body += "\n\nGoals: 0 daemon crashes, 0 lost rows, every fault reported with its device and cause."
        record_section("hardware-faults", body)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 faults of each kind, not recorded")
    raise SystemExit(main(quick=parser.parse_args().quick))
