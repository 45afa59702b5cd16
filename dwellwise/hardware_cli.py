"""``dwellwise check-hardware --config FILE [--home] [--spectrum-s 1.0]``: is the hardware ready?

Opens the devices of the configuration's ``[devices]`` section the way the daemon does
(:mod:`dwellwise.daemon.devices`), then checks them one by one without running a scan: the
stage answers (firmware and device ids where the controller reports them), where its axes are,
its limits and kinematics, that it is homed (``--home`` homes it); the detector answers, its
energy calibration, and a short spectrum (``--spectrum-s``) with its counts, live and real time
and the counts in each element's ROI. Each check prints ``OK`` or ``FAILED`` with the reason.

Exit codes: 0 every check passed, 1 a check failed, 2 the configuration is bad. Do not run it
while a daemon drives the same devices (one serial port, one owner).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dwellwise.cliargs import UsageError, positive_float_arg

__all__ = ["add_check_hardware_parser", "check_hardware", "cmd_check_hardware"]

MAX_SPECTRUM_S = 600.0
"""Longest spectrum ``--spectrum-s`` may ask for, seconds."""


def add_check_hardware_parser(sub) -> None:
    """Add ``check-hardware`` to the ``dwellwise`` subcommands."""
    p = sub.add_parser(
        "check-hardware",
        help="connect to the configured stage and detector, read them, take a short spectrum",
        description="Connect to the devices of a daemon configuration's [devices] section, read "
        "positions, limits, kinematics and calibration, home the stage if asked, take a short "
        "spectrum, and print a report. Runs no scan. Exit codes: 0 all checks passed, 1 a check "
        "failed, 2 bad configuration. Do not run it while a daemon uses the same devices.",
    )
    p.add_argument("--config", type=Path, required=True, help="the daemon's TOML configuration")
    p.add_argument("--home", action="store_true", help="home the stage's axes (they move)")
    p.add_argument(
        "--spectrum-s",
        type=positive_float_arg,
        default=1.0,
        help="seconds of the test spectrum (real time; default 1)",
    )


@dataclass
class Check:
    """One line of the report."""

    name: str
    """What was checked."""
    ok: bool | None
    """Passed, failed, or ``None`` for a line that only informs."""
    detail: str
    """What was found, or why it failed."""


@dataclass
class Report:
    """Everything check-hardware found, device by device."""

    sections: list[tuple[str, list[Check]]] = field(default_factory=list)

    def section(self, title: str) -> list[Check]:
        checks: list[Check] = []
        self.sections.append((title, checks))
        return checks

    @property
    def failed(self) -> list[Check]:
        return [c for _, checks in self.sections for c in checks if c.ok is False]

    def print(self, out: TextIO) -> None:
        for title, checks in self.sections:
            print(title, file=out)
            for c in checks:
                mark = {True: "OK", False: "FAILED", None: ""}[c.ok]
                print(f"  {c.name:<18} {mark:<7}{c.detail}", file=out)
        failed = self.failed
        if failed:
            names = ", ".join(c.name for c in failed)
            print(f"result: {len(failed)} check(s) FAILED ({names})", file=out)
        else:
            print("result: all checks passed", file=out)


def _attempt(checks: list[Check], name: str, fn: Callable[[], str]) -> bool:
    """Run one check; its exception (a device fault names the device and the cause) fails it."""
    try:
        detail = fn()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a FAILED line
        checks.append(Check(name, False, f"{type(exc).__name__}: {exc}"))
        return False
    checks.append(Check(name, True, detail))
    return True


def _fmt_range(lo: float, hi: float) -> str:
    return f"[{lo:.4g}, {hi:.4g}]"


def _zaber_ids(stage: Any) -> str:
    """Firmware version and device id of each controller of the chain, as far as they answer."""
    parts = []
    for label, axis in (("x", stage.x), ("y", stage.y)):
        try:
            version = stage.link.request(axis.device, 0, "get version", where=axis.where).reply.data
            device_id = stage.link.request(axis.device, 0, "get deviceid", where=axis.where).reply.data
            parts.append(f"{label}: device {axis.device} id {device_id} firmware {version}")
        except Exception as exc:  # noqa: BLE001 - informative only
            parts.append(f"{label}: device {axis.device} (ids unavailable: {exc})")
    return "; ".join(parts)


def _check_stage(report: Report, config: Any, beamline: Any, home: bool) -> Any:
    """The stage's checks; returns the open stage (or ``None``)."""
    from dwellwise.daemon.devices import open_stage

    checks = report.section(f"stage: {config.describe()}")
    if config.kind == "sim":
        checks.append(Check("kind", None, "simulated (nothing to connect to)"))
        return open_stage(config, beamline)
    holder: dict[str, Any] = {}

    def connect() -> str:
        holder["stage"] = open_stage(config, beamline)
        return f"port {config.port} at {config.baudrate} baud; {_zaber_ids(holder['stage'])}"

    if not _attempt(checks, "connect", connect):
        return None
    stage = holder["stage"]
    (xl, xh), (yl, yh) = stage.limits
    kin = stage.kinematics
    checks.append(Check("limits", None, f"x {_fmt_range(xl, xh)} mm, y {_fmt_range(yl, yh)} mm"))
    checks.append(
        Check(
            "kinematics",
            None,
            f"v_max {kin.v_max:.4g} mm/s, a_max {kin.a_max:.4g} mm/s², settle {kin.settle_s:g} s",
        )
    )
    if home:
        _attempt(checks, "home", lambda: (stage.home(), "both axes homed")[1])

    def position() -> str:
        x, y = stage.x.read_position(), stage.y.read_position()
        return f"x {x:.4f} mm, y {y:.4f} mm"

    _attempt(checks, "position", position)
    if stage.homed:
        checks.append(Check("homed", True, "both axes have a reference position"))
    else:
        checks.append(
            Check("homed", False, "not homed: run `dwellwise check-hardware --home` (the axes move)")
        )
    return stage


def _check_sdd(report: Report, config: Any, stage: Any, spectrum_s: float) -> None:
    from dwellwise.daemon.devices import open_sdd

    checks = report.section(f"sdd: {config.describe()}")
    if config.kind == "sim":
        checks.append(Check("kind", None, "simulated (each job simulates its scene)"))
        return
    if stage is None:
        checks.append(Check("connect", False, "not tried: the stage it is gated by did not open"))
        return
    holder: dict[str, Any] = {}

    def connect() -> str:
        holder["sdd"] = open_sdd(config, stage)
        return f"every PV of {config.prefix} answers"

    if not _attempt(checks, "connect", connect):
        return
    sdd = holder["sdd"]
    axis = sdd.axis
    checks.append(
        Check(
            "calibration",
            None,
            f"{axis.channels} channels, {axis.offset_kev:.4g} keV + {axis.gain_kev * 1e3:.4g} "
            f"eV/channel ({axis.centers[-1]:.4g} keV at the last); ROIs "
            + ", ".join(f"{el} {lo}-{hi}" for el, (lo, hi) in zip(sdd.elements, sdd.roi_windows, strict=True)),
        )
    )

    def spectrum() -> str:
        acq = sdd.acquire(spectrum_s)
        counts = acq.counts[0]
        live, real = float(acq.live_time[0]), float(acq.real_time[0])
        rois = sdd.roi_counts(counts[None])[:, 0]
        dead = 100.0 * (1.0 - live / real) if real > 0 else math.nan
        total = int(counts.sum())
        text = f"{total:,} counts, live {live:.4g} s / real {real:.4g} s (dead time {dead:.3g}%)"
        if total == 0:
            text += "; no counts: is the X-ray source on and the shutter open?"
        roi = ", ".join(f"{el} {int(v):,}" for el, v in zip(sdd.elements, rois, strict=True))
        return f"{text}; ROI counts {roi}"

    _attempt(checks, f"spectrum {spectrum_s:g} s", spectrum)


def check_hardware(config_path: Path, *, home: bool, spectrum_s: float, out: TextIO) -> int:
    """Run every check of ``config_path``'s devices and print the report; the exit code (0 all
    passed, 1 a check failed). :class:`~dwellwise.daemon.config.ConfigError` for a bad file."""
    from dwellwise.daemon.config import load_config

    config = load_config(config_path)
    devices = config.devices
    print(f"dwellwise check-hardware: {config_path}", file=out)
    if not devices.hardware:
        print(
            "devices: all simulated (no [devices] section with kind 'zaber' or 'epics-mca'); "
            "nothing to check",
            file=out,
        )
        return 0
    report = Report()
    stage = None
    try:
        stage = _check_stage(report, devices.stage, config.beamline, home)
        _check_sdd(report, devices.sdd, stage, spectrum_s)
    finally:
        close = getattr(stage, "close", None)
        if callable(close):
            close()
    report.print(out)
    return 1 if report.failed else 0


def cmd_check_hardware(args: argparse.Namespace) -> int:
    """``dwellwise check-hardware``."""
    import sys

    from dwellwise.daemon.config import ConfigError

    if not args.spectrum_s <= MAX_SPECTRUM_S:
        raise UsageError(f"--spectrum-s must be at most {MAX_SPECTRUM_S:g} s, got {args.spectrum_s:g}")
    try:
        return check_hardware(
            args.config, home=args.home, spectrum_s=args.spectrum_s, out=sys.stdout
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
