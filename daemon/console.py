"""The operator console: ``dwellwise console status|submit|jobs|job|watch|pause|resume|abort``.

Each command is a function ``(args, client, out) -> exit code``: 0 done, 1 the daemon refused (or
the watched job did not complete), 3 no daemon answered. ``watch`` follows a job on the event
socket with a progress bar and prints a summary when it ends; it also asks the control socket
every few seconds, so an event missed (PUB/SUB drops what is sent before a subscriber is
connected) never leaves it waiting.

A daemon with keys needs ``--key FILE`` (this client's ``.key_secret`` file, from ``dwellwise
keygen``) and the daemon's public key: ``--server-key FILE`` (its ``server.key``) or ``--config
FILE`` (the daemon's config: ``[security] server_public_key``, else the public half of
``server_secret_key``). The environment variables ``DWELLWISE_KEY`` and ``DWELLWISE_SERVER_KEY``
stand in for the two flags. ``--config`` also gives the default ``--address`` (the config's
control socket).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, TextIO

from dwellwise.daemon.client import ControlClient, DaemonError, DaemonUnreachable, EventStream
from dwellwise.daemon.config import DEFAULT_CONTROL, ConfigError, load_config
from dwellwise.daemon.keys import ClientKeys, KeysError, load_public_key, load_secret_key
from dwellwise.daemon.protocol import ScanRequest, describe_errors
from pydantic import ValidationError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
FINAL_STATES = ("completed", "failed", "aborted", "interrupted")
POLL_S = 2.0
"""Seconds between control-socket checks while watching."""


class ConsoleUsageError(ValueError):
    """Bad console input (exit code 2)."""


def run_console(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one console command; returns the exit code."""
    out = out or sys.stdout
    address, keys = connection(args)
    if "://" not in address:
        raise ConsoleUsageError(
            f"--address {address!r} is not a ZeroMQ address; write e.g. tcp://127.0.0.1:5577 or "
            "ipc:///run/dwellwise/control"
        )
    client = ControlClient(address, timeout=args.timeout, keys=keys)
    command = COMMANDS[args.action]
    try:
        return command(args, client, out)
    except DaemonUnreachable as exc:
        print(f"dwellwise console: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except DaemonError as exc:
        print(f"dwellwise console {args.action}: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def connection(args: argparse.Namespace) -> tuple[str, ClientKeys | None]:
    """The control address and the CURVE keys (``None``: none) from ``--address``, ``--key``,
    ``--server-key``, ``--config`` and the environment; :class:`ConsoleUsageError` if the keys
    cannot be read or one of the pair is missing."""
    config_file = getattr(args, "config", None)
    config = None
    if config_file is not None:
        try:
            config = load_config(config_file)
        except ConfigError as exc:
            raise ConsoleUsageError(str(exc)) from None
    address = getattr(args, "address", None)
    if address is None:
        address = DEFAULT_CONTROL if config is None else _local(config.daemon.control)
    key = getattr(args, "key", None) or os.environ.get("DWELLWISE_KEY") or None
    server_key = getattr(args, "server_key", None) or os.environ.get("DWELLWISE_SERVER_KEY") or None
    if server_key is None and config is not None:
        sec = config.security
        server_key = sec.server_public_key or sec.server_secret_key
    if key is None:
        if getattr(args, "server_key", None) is not None:
            raise ConsoleUsageError("--server-key needs --key (this client's .key_secret file)")
        return address, None
    if server_key is None:
        raise ConsoleUsageError(
            "--key needs the daemon's public key: --server-key FILE (its server.key) or "
            "--config FILE (the daemon's config)"
        )
    try:
        public, secret = load_secret_key(key, "client secret key file (--key)")
        server = load_public_key(server_key, "server public key file")
    except KeysError as exc:
        raise ConsoleUsageError(str(exc)) from None
    return address, ClientKeys(public, secret, server)


def _local(address: str) -> str:
    """A bind address as a client connects to it (a wildcard host -> 127.0.0.1)."""
    transport, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if transport == "tcp" and host in ("0.0.0.0", "*", "[::]", "::"):
        return f"tcp://127.0.0.1:{port}"
    return address


# -- commands --------------------------------------------------------------------------------------
def cmd_status(args, client: ControlClient, out: TextIO) -> int:
    st = client.call("status")
    if args.json:
        _dump(st, out)
        return EXIT_OK
    print(
        f"daemon {st['daemon']} at {client.address} (pid {st['pid']}, up {st['uptime_s']:.0f} s),"
        f" compute: {st['compute']['device']} ({st['compute']['name']})",
        file=out,
    )
    if st.get("current_job"):
        line = f"{st['state']}: job {st['current_job']}"
        if st.get("pausing"):
            line += " (pausing)"
        if st.get("progress"):
            line += " | " + progress_line(st["progress"], bar=False)
        print(line, file=out)
    else:
        print(f"{st['state']}: no job running", file=out)
    print(f"queue: {st['queue_length']} job(s)  {' '.join(st['queued'])}".rstrip(), file=out)
    print(f"data: {st['data_dir']}", file=out)
    return EXIT_OK


def cmd_submit(args, client: ControlClient, out: TextIO) -> int:
    params = submit_params(args)
    result = client.call("submit", **params)
    if args.json:
        _dump(result, out)
    else:
        print(f"job {result['job_id']} queued; cube file {result['cube_file']}", file=out)
    if args.watch:
        args.job_id = result["job_id"]
        return cmd_watch(args, client, out)
    return EXIT_OK


def cmd_jobs(args, client: ControlClient, out: TextIO) -> int:
    jobs = client.call("jobs", limit=args.limit)["jobs"]
    if args.json:
        _dump(jobs, out)
        return EXIT_OK
    if not jobs:
        print("no jobs", file=out)
        return EXIT_OK
    print(
        f"{'job':<23} {'state':<11} {'mode':<8} {'scene':<10} {'shape':>7} {'used/budget s':>14}  policy",
        file=out,
    )
    for j in jobs:
        r = j["request"]
        shape = "x".join(str(v) for v in r.get("shape", []))
        budget = j.get("budget_s") or r.get("budget") or 0
        print(
            f"{j['job_id']:<23} {j['state']:<11} {r.get('mode', ''):<8} {r.get('scene', '')[:10]:<10}"
            f" {shape:>7} {j['used_s']:>6.1f}/{budget:<7g}  {j.get('policy') or '-'}",
            file=out,
        )
    return EXIT_OK


def cmd_job(args, client: ControlClient, out: TextIO) -> int:
    job = client.call("job", job_id=args.job_id)
    if args.json:
        _dump(job, out)
        return EXIT_OK
    print(summary(job), file=out)
    return EXIT_OK


def cmd_pause(args, client: ControlClient, out: TextIO) -> int:
    return _simple(client, "pause", args, out)


def cmd_resume(args, client: ControlClient, out: TextIO) -> int:
    return _simple(client, "resume", args, out)


def cmd_abort(args, client: ControlClient, out: TextIO) -> int:
    return _simple(client, "abort", args, out)


def cmd_shutdown(args, client: ControlClient, out: TextIO) -> int:
    reply = client.request("shutdown")
    print(reply.get("msg", ""), file=out)
    return EXIT_OK if reply.get("success") else EXIT_REFUSED


def _simple(client: ControlClient, method: str, args, out: TextIO) -> int:
    params = {"job_id": args.job_id} if args.job_id else {}
    reply = client.request(method, params)
    if not reply.get("success"):
        raise DaemonError(reply.get("msg", "refused"), reply)
    print(reply.get("msg", "done"), file=out)
    return EXIT_OK


def cmd_watch(args, client: ControlClient, out: TextIO) -> int:
    err = sys.stderr if out is sys.stdout else out
    job = watch(client, args.job_id, events=args.events, bar_out=err)
    if job is None:
        print("no job is running or queued", file=out)
        return EXIT_OK
    print(summary(job), file=out)
    return EXIT_OK if job["state"] == "completed" else EXIT_REFUSED


def watch(
    client: ControlClient,
    job_id: str | None = None,
    *,
    events: str | None = None,
    bar_out: TextIO | None = None,
) -> dict[str, Any] | None:
    """Follow ``job_id`` (default: the current or next queued job) with a progress bar on
    ``bar_out`` until it ends; returns its final record, or ``None`` if there is no job."""
    bar = ProgressBar(bar_out or sys.stderr)
    with EventStream(
        events or _events_address(client), topics=("progress", "job"), keys=client.keys
    ) as stream:
        if job_id is None:
            st = client.call("status")
            job_id = st.get("current_job") or next(iter(st.get("queued") or []), None)
            if job_id is None:
                return None
        job = client.call("job", job_id=job_id)
        next_poll = time.monotonic() + POLL_S
        try:
            while job["state"] not in FINAL_STATES:
                if job.get("rows_total"):
                    bar.draw(job)
                event = stream.next(timeout=0.5)
                if event is not None:
                    topic, payload = event
                    if payload.get("job_id") != job_id:
                        continue
                    if topic == "progress":
                        job = {**job, **{k: v for k, v in payload.items() if k != "time"}}
                        bar.draw(job)
                        continue
                    job = {**job, **payload}
                if event is None or time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + POLL_S
                    job = client.call("job", job_id=job_id)
            job = client.call("job", job_id=job_id)
            bar.draw(job)
        finally:
            bar.finish()
    return job


COMMANDS = {
    "status": cmd_status,
    "submit": cmd_submit,
    "jobs": cmd_jobs,
    "job": cmd_job,
    "watch": cmd_watch,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "abort": cmd_abort,
    "shutdown": cmd_shutdown,
}


# -- helpers -----------------------------------------------------------------------------------------
def submit_params(args) -> dict[str, Any]:
    """The scan request from ``--file`` and the flags (flags win), checked locally first."""
    params: dict[str, Any] = {}
    if args.file is not None:
        try:
            params.update(tomllib.loads(Path(args.file).read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConsoleUsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConsoleUsageError(f"{args.file} is not valid TOML: {exc}") from None
    for name in ScanRequest.model_fields:
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    if isinstance(params.get("weights"), str):
        params["weights"] = parse_weights(params["weights"])
    try:
        request = ScanRequest.model_validate(params)
    except ValidationError as exc:
        raise ConsoleUsageError(f"bad scan request: {describe_errors(exc)}") from None
    return request.model_dump(mode="json", include=set(params))


def parse_weights(text: str) -> dict[str, float] | list[float]:
    """``"Fe_K=2,Pb_L=1"`` -> mapping; ``"1,1,2"`` -> list."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if parts and all("=" in p for p in parts):
            return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        return [float(p) for p in parts]
    except ValueError:
        raise ConsoleUsageError(
            f"cannot read --weights {text!r}: write Fe_K=2,Pb_L=1 or one number per element"
        ) from None


def progress_line(p: dict[str, Any], *, bar: bool = True, width: int = 24) -> str:
    """``pass 1/2 [####----] row 4/8 | 12.3 s used, 27.7 s left of 40 s | 1.2e+04 counts/s``."""
    done, total = int(p.get("rows_done") or 0), max(1, int(p.get("rows_total") or 1))
    text = f"pass {p.get('pass_number') or 0}/{p.get('passes') or 1} "
    if bar:
        filled = round(width * done / total)
        text += f"[{'#' * filled}{'-' * (width - filled)}] "
    text += f"row {done}/{total} | {float(p.get('used_s') or 0):.1f} s used"
    if p.get("left_s") is not None and p.get("budget_s"):
        text += f", {float(p['left_s']):.1f} s left of {float(p['budget_s']):g} s"
    if p.get("count_rate") is not None:
        text += f" | {float(p['count_rate']):.3g} counts/s"
    if p.get("eta_s") is not None:
        text += f" | ends within {float(p['eta_s']):.0f} s"
    return text


class ProgressBar:
    """One line redrawn on a terminal; a line per tenth of a pass otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._last_key: tuple[int, int] | None = None
        self._drawn = False

    def draw(self, p: dict[str, Any]) -> None:
        line = progress_line(p)
        total = max(1, int(p.get("rows_total") or 1))
        key = (int(p.get("pass_number") or 0), (10 * int(p.get("rows_done") or 0)) // total)
        if self.tty:
            self.out.write("\r" + line + "\x1b[K")
            self.out.flush()
            self._drawn = True
        elif key != self._last_key:
            self._last_key = key
            self.out.write(line + "\n")
            self.out.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False


def summary(job: dict[str, Any]) -> str:
    """A few lines about a job."""
    r = job.get("request", {})
    budget = job.get("budget_s") or r.get("budget")
    shape = "x".join(str(v) for v in r.get("shape", []))
    lines = [
        f"job {job['job_id']}: {job['state']}",
        f"  request:   {r.get('mode')} scan of {r.get('scene')} {shape} px, budget {budget:g} s,"
        f" t0 {float(r.get('t0', 0)) * 1e3:g} ms, policy {r.get('policy')}, speedup {r.get('speedup')}",
        f"  cube file: {job.get('cube_file')}",
        f"  progress:  pass {job.get('pass_number')}/{job.get('passes')}, row {job.get('rows_done')}"
        f"/{job.get('rows_total')}, {job.get('rows_done_all')} rows in all;"
        f" {float(job.get('used_s') or 0):.1f} s used of {budget:g} s",
    ]
    if job.get("policy"):
        fell = " (fallback)" if job.get("fell_back") else ""
        lines.append(
            f"  policy:    {job['policy']}{fell}, trained on {job.get('train_device') or '-'}"
            f" for {float(job.get('train_s') or 0):.2f} s; compute between passes"
            f" {float(job.get('compute_s') or 0):.2f} s of instrument time"
        )
    if job.get("error"):
        lines.append(f"  error:     {job['error']}")
    return "\n".join(lines)


def _events_address(client: ControlClient) -> str:
    """The event socket's address from ``status``, with a wildcard host replaced by the host the
    control address names."""
    address = client.call("status")["addresses"]["events"]
    transport, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if transport == "tcp" and host in ("0.0.0.0", "*", "[::]", "::"):
        control_host = client.address.partition("://")[2].rpartition(":")[0]
        address = f"tcp://{control_host}:{port}"
    return address


def _dump(obj: Any, out: TextIO) -> None:
    json.dump(obj, out, indent=2, sort_keys=True)
    out.write("\n")
