"""The config's stage kinematics and limits reach the beamline the daemon builds."""

from __future__ import annotations

import pytest
from daemon_helpers import make_config
from dwellwise.daemon.client import ControlClient
from dwellwise.daemon.config import BeamlineSection, ConfigError, DaemonConfig
from dwellwise.daemon.server import Daemon

REQUEST = {"scene": "astronaut", "shape": [8, 10], "budget": 40, "t0": 0.005, "speedup": 50}


def test_a_slower_stage_from_the_config_refuses_a_t0_it_cannot_fly(tmp_path):
    config = make_config(tmp_path).model_copy(
        update={"beamline": BeamlineSection(v_max=50.0, limits_x=(-20.0, 200.0))}
    )
    with Daemon(config) as daemon:
        client = ControlClient(daemon.addresses["control"], timeout=10.0)
        reply = client.request("submit", REQUEST)
        assert not reply["success"]
        assert "50.0 mm/s" in reply["msg"] and "10 ms" in reply["msg"]
        assert client.request("submit", {**REQUEST, "t0": 0.01})["success"]


def test_bad_kinematics_in_the_config_are_refused_by_name():
    with pytest.raises((ConfigError, ValueError), match="v_max"):
        DaemonConfig.model_validate({"beamline": {"v_max": -1}})
