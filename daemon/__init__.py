"""dwellwise.daemon: the long-running acquisition service and its operator console.

One module per job (nothing heavy is imported here):

- :mod:`~dwellwise.daemon.protocol`: control requests and replies, ``ScanRequest``, ``Job``,
  ``JobState``; parsing that turns malformed input into a reply naming the problem.
- :mod:`~dwellwise.daemon.config`: the TOML configuration (``DaemonConfig``, ``load_config``).
- :mod:`~dwellwise.daemon.addresses`: loopback checks and binding.
- :mod:`~dwellwise.daemon.ledger`: the SQLite job ledger (``Ledger``).
- :mod:`~dwellwise.daemon.build`: a job's beamline and plan from its request (``build_scan``).
- :mod:`~dwellwise.daemon.progress`: a job's progress from its documents (``JobProgress``).
- :mod:`~dwellwise.daemon.runner`: the RunEngine worker thread and job queue (``Runner``).
- :mod:`~dwellwise.daemon.publish`: the event and document PUB sockets (``Broadcaster``).
- :mod:`~dwellwise.daemon.server`: the daemon (``Daemon``).
- :mod:`~dwellwise.daemon.client`: ``ControlClient`` (REQ with a timeout), ``EventStream`` (SUB).
- :mod:`~dwellwise.daemon.console` and :mod:`~dwellwise.daemon.cli`: ``dwellwise console`` and
  ``dwellwise serve``.
"""
