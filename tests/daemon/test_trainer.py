"""The trainer process: the dwell policy between passes in a warm worker that a hang or a crash
cannot take the daemon down with."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest
from daemon_helpers import SMALL, make_config, wait_state
from dwellwise.daemon.client import ControlClient
from dwellwise.daemon.server import Daemon
from dwellwise.daemon.trainer import (
    TEST_POLICIES,
    TEST_POLICIES_ENV,
    TrainerError,
    TrainerProcess,
    register_test_policies,
)
from dwellwise.planners.between_passes import (
    THREAD_BACKEND,
    AllocationJob,
    PolicyRequest,
    compute_backend,
    get_compute_backend,
)

WARM_S = 90.0
"""Longest a worker may take to start (imports torch) on a loaded test machine."""
SLACK_S = 0.5
"""How late past its deadline a job may fall back."""


@pytest.fixture(scope="module")
def test_policies():
    """The trainer-test-* policies in the workers (environment) and here (so a scan request
    naming one is accepted; here they only raise)."""
    from dwellwise.planners.policies import _REGISTRY

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TEST_POLICIES_ENV, "1")
        register_test_policies()
        yield
        for name in TEST_POLICIES:
            _REGISTRY.pop(name, None)


@pytest.fixture(scope="module")
def trainer(test_policies):
    t = TrainerProcess(kill_grace_s=0.5).start()
    assert t.wait_ready(WARM_S), t.state()
    yield t
    t.close()
    assert t.state()["state"] == "stopped"


@pytest.fixture(scope="module")
def counts():
    return np.random.default_rng(5).poisson(30.0, size=(2, 16, 16)).astype(float)


def job(counts, policy, deadline_s, backend, **options):
    j = AllocationJob(
        counts,
        np.full(counts.shape[1:], 0.01),
        0.02,
        policy=policy,
        weights=None,
        min_dwell=0.0,
        deadline_s=deadline_s,
        seed=0,
        backend=backend,
        **options,
    )
    asyncio.run(j.wait())
    return j.result()


def request(counts, policy, deadline_s, **options):
    return PolicyRequest(
        counts=counts,
        t0=np.full(counts.shape[1:], 0.01),
        mean_dwell=0.02,
        policy=policy,
        weights=None,
        min_dwell=0.0,
        seed=0,
        deadline_s=deadline_s,
        options=options,
    )


def served_by(trainer, counts):
    """The pid of the worker that answers a quick request (waits for a warm one)."""
    assert trainer.wait_ready(WARM_S), trainer.state()
    return trainer.submit(request(counts, "trainer-test-ok", WARM_S)).result(WARM_S + 10).pid


def test_a_closed_form_policy_answers_from_the_worker(trainer, counts):
    answer = trainer.submit(request(counts, "blindspot-sqrt", 10.0)).result(20)
    assert answer.pid == trainer.state()["pid"] != os.getpid()
    assert answer.device == "-" and answer.train_s == 0.0
    assert answer.dwell.mean() == pytest.approx(0.02, rel=1e-9)


def test_n2v_trains_in_the_worker_and_reports_its_device(trainer, counts):
    with compute_backend(trainer):
        assert get_compute_backend() is trainer
        alloc = job(counts, "n2v-sqrt", 20.0, None, steps=5)
    assert get_compute_backend() is THREAD_BACKEND
    assert not alloc.fell_back, alloc.note
    assert alloc.policy == "n2v-sqrt" and alloc.device == trainer.state()["device"]
    assert alloc.device in ("cpu", "cuda") and 0 < alloc.train_s < alloc.compute_s
    assert alloc.dwell.mean() == pytest.approx(0.02, rel=1e-9)


def test_a_hanging_policy_falls_back_on_time_and_a_fresh_worker_serves_next(trainer, counts):
    before = served_by(trainer, counts)
    restarts = trainer.state()["restarts"]
    start = time.perf_counter()
    alloc = job(counts, "trainer-test-hang", 1.0, trainer)
    took = time.perf_counter() - start
    assert alloc.fell_back and alloc.policy == "blindspot-sqrt" and alloc.device == "-"
    assert "deadline" in alloc.note
    assert 1.0 <= took < 1.0 + SLACK_S
    after = served_by(trainer, counts)
    assert after != before
    state = trainer.state()
    assert state["restarts"] == restarts + 1 and "killed" in state["last_failure"]


@pytest.mark.parametrize(
    "policy, why",
    [("trainer-test-exit", "exited with code 1"), ("trainer-test-segfault", "SIGSEGV")],
)
def test_a_crashing_worker_means_the_fallback_and_a_fresh_worker(trainer, counts, policy, why):
    before = served_by(trainer, counts)
    start = time.perf_counter()
    alloc = job(counts, policy, 10.0, trainer)
    assert time.perf_counter() - start < 5.0  # noticed at once, not at the deadline
    assert alloc.fell_back and why in alloc.note and str(before) in alloc.note
    assert served_by(trainer, counts) != before


def test_an_error_keeps_the_worker_unless_it_is_a_cuda_error(trainer, counts):
    pid = served_by(trainer, counts)
    for policy, what in [("trainer-test-raise", "as asked"), ("trainer-test-oom", "out of memory")]:
        alloc = job(counts, policy, 10.0, trainer)
        assert alloc.fell_back and what in alloc.note
        assert served_by(trainer, counts) == pid  # an ordinary error or an OOM: same worker
    alloc = job(counts, "trainer-test-cuda-error", 10.0, trainer)
    assert alloc.fell_back and "CUDA error" in alloc.note
    assert served_by(trainer, counts) != pid  # its CUDA context is lost: replaced


def test_a_request_before_the_worker_is_warm_counts_its_wait(test_policies, counts):
    with TrainerProcess() as cold:
        start = time.perf_counter()
        alloc = job(counts, "blindspot-sqrt", 0.3, cold)
        took = time.perf_counter() - start
    assert alloc.fell_back and took < 0.3 + SLACK_S
    assert "deadline" in alloc.note
    assert cold.state()["state"] == "stopped"
    with pytest.raises(TrainerError, match="closed"):
        cold.submit(request(counts, "blindspot-sqrt", 1.0)).result(1)


def test_closing_does_not_wait_for_a_hung_worker(test_policies, counts):
    trainer = TrainerProcess().start()
    try:
        assert trainer.wait_ready(WARM_S), trainer.state()
        pid = trainer.state()["pid"]
        hung = trainer.submit(request(counts, "trainer-test-hang", 600.0))
        time.sleep(0.3)
        assert trainer.state()["state"] == "busy"
    finally:
        start = time.perf_counter()
        trainer.close()
        took = time.perf_counter() - start
    assert took < 3.0
    with pytest.raises(TrainerError):
        hung.result(5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone (and reaped)


def test_the_daemon_survives_a_worker_that_exits(test_policies, tmp_path):
    daemon = Daemon(make_config(tmp_path)).start()
    try:
        assert get_compute_backend() is daemon.trainer
        assert daemon.trainer.wait_ready(WARM_S), daemon.trainer.state()
        client = ControlClient(daemon.addresses["control"], timeout=10)
        pid = client.call("status")["trainer"]["pid"]
        job_id = client.call("submit", **{**SMALL, "policy": "trainer-test-exit", "speedup": 10})[
            "job_id"
        ]
        done = wait_state(client, job_id, timeout=60)
        assert done["state"] == "completed" and done["error"] is None
        assert done["fell_back"] and done["policy"] == "blindspot-sqrt"
        assert done["train_device"] == "-"
        st = client.call("status")
        assert st["daemon"] == "running" and st["state"] == "idle"
        assert daemon.trainer.wait_ready(WARM_S)
        trainer = client.call("status")["trainer"]
        assert trainer["restarts"] >= 1 and trainer["pid"] != pid
        assert "exited with code 1" in trainer["last_failure"]
    finally:
        daemon.close()
        assert daemon.wait(30)
    assert get_compute_backend() is THREAD_BACKEND
    assert daemon.trainer.state()["state"] == "stopped"
