"""Fixtures of the hardware tests: the caproto MCA IOC on loopback (one per session) and the
Zaber emulator on a pty (one per test)."""

from __future__ import annotations

import os

import pytest
from dwellwise.simulators.mca_ioc import McaIoc, UniformMaterial
from hardware_helpers import AXIS, CA_ENV, emulator


@pytest.fixture(scope="session")
def ioc():
    """One MCA IOC for the session (a uniform material); use ``clean_ioc``."""
    source = UniformMaterial({"Ca_K": 3000.0, "Fe_K": 5000.0, "Pb_L": 4000.0}, axis=AXIS)
    server = McaIoc("THW:", source=source, seed=5).start()
    yield server
    server.stop()


@pytest.fixture
def clean_ioc(ioc):
    """The IOC, answering and without faults before and after the test; the Channel Access
    client settings a daemon config changes are restored afterwards."""
    saved = {k: os.environ.get(k) for k in CA_ENV}
    ioc.answer()
    ioc.faults.clear()
    yield ioc
    ioc.answer()
    ioc.faults.clear()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def zaber():
    emu = emulator()
    yield emu
    emu.close()


