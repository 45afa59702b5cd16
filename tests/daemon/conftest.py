"""Fixtures: a daemon in-process on free loopback ports and a client."""

from __future__ import annotations

import pytest
from daemon_helpers import make_config
from dwellwise.daemon.client import ControlClient
from dwellwise.daemon.server import Daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(make_config(tmp_path_factory.mktemp("daemon-data"))).start()
    yield d
    d.close()
    assert d.wait(30), "the daemon did not shut down"


@pytest.fixture
def client(daemon) -> ControlClient:
    return ControlClient(daemon.addresses["control"], timeout=10)
