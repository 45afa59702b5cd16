"""``dwellwise serve``, ``dwellwise console`` and ``dwellwise keygen``: parsers and entry points.

``dwellwise.cli`` calls :func:`add_daemon_parsers` and maps ``serve`` / ``console`` / ``keygen``
to :func:`cmd_serve` / :func:`cmd_console` / :func:`cmd_keygen` (from
:mod:`dwellwise.daemon.keys`). Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dwellwise.daemon.config import DEFAULT_CONTROL
from dwellwise.daemon.keys import add_keygen_parser, cmd_keygen

from dwellwise.cliargs import UsageError, duration_arg, positive_float_arg, shape_arg

__all__ = ["add_daemon_parsers", "cmd_console", "cmd_keygen", "cmd_serve"]


def add_daemon_parsers(sub) -> None:
    """Add ``serve``, ``console`` and ``keygen`` to the ``dwellwise`` subcommands."""
    serve = sub.add_parser(
        "serve",
        help="run the acquisition daemon (ZeroMQ control, events and documents)",
        description="Run the acquisition daemon until `dwellwise console shutdown`, SIGTERM or "
        "Ctrl-C. Without --config: control tcp://127.0.0.1:60715, events :60716, documents "
        ":60717, data directory ./dwellwise-data, the simulated beamline. Without keys "
        "([security] in the config, see dwellwise keygen) only loopback addresses are allowed "
        "(or --insecure); with keys every socket is encrypted and only allowed clients get in.",
    )
    serve.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    serve.add_argument("--data-dir", type=Path, default=None, help="ledger and cube files")
    serve.add_argument("--control", default=None, help="control socket address (tcp://HOST:PORT)")
    serve.add_argument("--events", default=None, help="event socket address")
    serve.add_argument("--documents", default=None, help="Bluesky document socket address")
    serve.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow non-loopback addresses without keys, unencrypted (logged loudly); "
        "with keys ([security] in the config) any address is allowed and this does nothing",
    )
    serve.add_argument("--debug", action="store_true", help="log debug messages too")

    console = sub.add_parser(
        "console",
        help="talk to a running daemon: status, submit, jobs, job, watch, pause, resume, abort",
        description="Exit codes: 0 done, 1 refused by the daemon (or the watched job did not "
        "complete), 2 bad usage, 3 no daemon answered.",
    )
    actions = console.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--address",
        default=None,
        help=f"control socket (default: the --config's, else {DEFAULT_CONTROL})",
    )
    common.add_argument(
        "--key",
        type=Path,
        default=None,
        help="this client's secret key file (NAME.key_secret from dwellwise keygen) for a "
        "daemon with keys (CURVE); default $DWELLWISE_KEY",
    )
    common.add_argument(
        "--server-key",
        type=Path,
        default=None,
        help="the daemon's public key file (server.key); default $DWELLWISE_SERVER_KEY or "
        "from --config",
    )
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the daemon's config file: its control address and server public key",
    )
    common.add_argument(
        "--timeout", type=positive_float_arg, default=5.0, help="seconds to wait for a reply"
    )
    common.add_argument("--json", action="store_true", help="print the raw JSON result")

    actions.add_parser("status", parents=[common], help="daemon state, current job, queue")
    submit = actions.add_parser(
        "submit", parents=[common], help="queue a scan (flags or --file request.toml)"
    )
    submit.add_argument("--file", type=Path, default=None, help="TOML file with request fields")
    submit.add_argument("--scene", default=None, help="painting scene (astronaut, procedural, ...)")
    submit.add_argument("--shape", type=shape_arg, default=None, help="HxW pixels, e.g. 32x32")
    submit.add_argument("--pixel-size", type=positive_float_arg, default=None, help="pitch, mm")
    submit.add_argument("--budget", type=duration_arg, default=None, help="total time (60, 2min)")
    submit.add_argument("--t0", type=duration_arg, default=None, help="first-pass dwell (5ms)")
    submit.add_argument("--policy", default=None, help="dwell policy (auto, uniform, ...)")
    submit.add_argument("--passes", type=int, default=None, help="passes in adaptive mode")
    submit.add_argument("--weights", default=None, help="Fe_K=2,Pb_L=1 or one number per element")
    submit.add_argument("--mode", choices=["adaptive", "raster"], default=None)
    submit.add_argument(
        "--speedup", type=positive_float_arg, default=None, help="simulated speedup"
    )
    submit.add_argument("--seed", type=int, default=None, help="random seed of the simulation")
    submit.add_argument(
        "--analysis", action="store_true", default=None, help="analyse the finished cube"
    )
    submit.add_argument("--watch", action="store_true", help="watch the job after queueing it")
    submit.add_argument("--events", default=None, help="event socket (default: from status)")
    jobs = actions.add_parser("jobs", parents=[common], help="recent jobs")
    jobs.add_argument("--limit", type=int, default=20, help="how many")
    job = actions.add_parser("job", parents=[common], help="one job in detail")
    job.add_argument("job_id")
    watch = actions.add_parser(
        "watch", parents=[common], help="progress bar of a job (default: the current one)"
    )
    watch.add_argument("job_id", nargs="?", default=None)
    watch.add_argument("--events", default=None, help="event socket (default: from status)")
    for name, text in (
        ("pause", "pause the current job at the end of the row"),
        ("resume", "resume the paused job"),
        ("abort", "abort the current job (completed rows stay in the file) or drop a queued one"),
    ):
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("job_id", nargs="?", default=None)
    actions.add_parser("shutdown", parents=[common], help="stop the daemon")
    add_keygen_parser(sub)


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from dwellwise.daemon.addresses import AddressError, check_bind
    from dwellwise.daemon.config import ConfigError, load_config
    from dwellwise.daemon.datadir_lock import DataDirInUse
    from dwellwise.daemon.keys import KeysError
    from dwellwise.daemon.server import Daemon, configure_logging, load_security

    try:
        config = load_config(args.config).with_overrides(
            data_dir=args.data_dir,
            control=args.control,
            events=args.events,
            documents=args.documents,
            insecure=args.insecure,
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if config.daemon.data_dir.exists() and not config.daemon.data_dir.is_dir():
        raise UsageError(
            f"data directory {config.daemon.data_dir} is a file; name a directory (it is created "
            "if missing) for the ledger and the cube files"
        )
    secure = config.security.enabled
    if secure:  # unreadable keys or a bad allow-list: refused before anything starts
        try:
            load_security(config.security)
        except KeysError as exc:
            raise UsageError(str(exc)) from None
    if not config.daemon.insecure:  # refuse before logging is set up (the daemon re-checks)
        for what in ("control", "events", "documents"):
            try:
                check_bind(getattr(config.daemon, what), insecure=False, what=what, secure=secure)
            except AddressError as exc:
                raise UsageError(str(exc)) from None
    configure_logging(logging.DEBUG if args.debug else logging.INFO)
    daemon = Daemon(config)
    try:
        daemon.start()
    except (AddressError, KeysError, DataDirInUse) as exc:
        raise UsageError(str(exc)) from None
    daemon.serve_forever()
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from dwellwise.daemon.console import ConsoleUsageError, run_console

    if getattr(args, "passes", None) is not None and args.passes < 1:
        raise UsageError(f"--passes must be >= 1, got {args.passes}")
    try:
        return run_console(args)
    except ConsoleUsageError as exc:
        raise UsageError(str(exc)) from None
