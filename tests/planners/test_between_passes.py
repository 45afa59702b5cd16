"""The compute between passes: AllocationJob on the default thread backend and on others."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future

import numpy as np
import pytest
from dwellwise.planners.between_passes import (
    THREAD_BACKEND,
    AllocationJob,
    PolicyAnswer,
    compute_backend,
    get_compute_backend,
    install_compute_backend,
    remove_compute_backend,
)
from dwellwise.planners.policies import register

SLACK_S = 0.3
"""How late past its deadline a job may fall back (scheduling on a loaded machine)."""

_release = threading.Event()


@register("test-between-stall", "test only: waits until released (at most 10 s)")
def _stall(problem):
    _release.wait(10.0)
    return np.full(problem.t0.shape, problem.mean_dwell)


@register("test-between-fail", "test only: raises")
def _fail(problem):
    raise ValueError("the policy broke on purpose")


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(7)
    return rng.poisson(40.0, size=(2, 12, 14)).astype(float)


def run_job(counts, policy, deadline_s, **kw):
    job = AllocationJob(
        counts,
        np.full(counts.shape[1:], 0.01),
        0.02,
        policy=policy,
        weights=None,
        min_dwell=0.001,
        deadline_s=deadline_s,
        seed=0,
        **kw,
    )
    asyncio.run(job.wait())
    return job.result()


def test_the_thread_backend_is_the_default():
    assert get_compute_backend() is THREAD_BACKEND


def test_an_answer_in_time_is_taken(counts):
    alloc = run_job(counts, "blindspot-sqrt", 10.0)
    assert not alloc.fell_back and alloc.note == ""
    assert alloc.policy == alloc.requested == "blindspot-sqrt"
    assert alloc.device == "-" and alloc.train_s == 0.0
    assert alloc.dwell.shape == counts.shape[1:]
    assert alloc.dwell.mean() == pytest.approx(0.02, rel=1e-9) and alloc.dwell.min() >= 0.001
    assert alloc.compute_s < 10.0


def test_a_stalling_policy_falls_back_at_its_deadline(counts):
    _release.clear()
    try:
        start = time.perf_counter()
        alloc = run_job(counts, "test-between-stall", 0.4)
        took = time.perf_counter() - start
    finally:
        _release.set()
    assert alloc.fell_back and alloc.policy == "blindspot-sqrt"
    assert alloc.requested == "test-between-stall"
    assert "missed its 0.4 s deadline" in alloc.note
    assert 0.4 <= took < 0.4 + SLACK_S and alloc.compute_s < 0.4 + SLACK_S
    assert alloc.dwell.mean() == pytest.approx(0.02, rel=1e-9) and alloc.device == "-"


def test_a_failing_policy_falls_back_at_once_with_the_error(counts):
    start = time.perf_counter()
    alloc = run_job(counts, "test-between-fail", 5.0)
    assert time.perf_counter() - start < 2.0  # no waiting for the deadline
    assert alloc.fell_back and alloc.policy == "blindspot-sqrt"
    assert "test-between-fail failed" in alloc.note
    assert "the policy broke on purpose" in alloc.note


def test_an_unknown_policy_falls_back_with_the_valid_names(counts):
    alloc = run_job(counts, "telepathy", 5.0)
    assert alloc.fell_back and "telepathy" in alloc.note and "blindspot-sqrt" in alloc.note


class FakeBackend:
    """Answers every request at once as if a GPU had trained for 1.5 s."""

    def __init__(self) -> None:
        self.requests = []

    def submit(self, request):
        self.requests.append(request)
        future: Future = Future()
        dwell = np.full(request.t0.shape, request.mean_dwell)
        future.set_result(PolicyAnswer(dwell, device="cuda", train_s=1.5, pid=1))
        return future


class BrokenBackend:
    def submit(self, request):
        raise RuntimeError("no backend today")


def test_an_installed_backend_answers_with_its_device_and_training_time(counts):
    fake = FakeBackend()
    with compute_backend(fake):
        assert get_compute_backend() is fake
        alloc = run_job(counts, "auto", 5.0, steps=7)
    assert get_compute_backend() is THREAD_BACKEND
    assert not alloc.fell_back
    assert alloc.policy == "n2v-sqrt" and alloc.requested == "auto"  # auto trained: n2v-sqrt
    assert alloc.device == "cuda" and alloc.train_s == 1.5
    (req,) = fake.requests
    assert req.policy == "auto" and req.deadline_s == 5.0 and req.options == {"steps": 7}
    assert req.counts.shape == counts.shape and req.mean_dwell == 0.02 and req.min_dwell == 0.001
    assert 0 < req.left_s() <= 5.0


def test_a_broken_backend_means_the_fallback(counts):
    with compute_backend(BrokenBackend()):
        alloc = run_job(counts, "n2v-sqrt", 5.0)
    assert alloc.fell_back and "no backend today" in alloc.note
    assert alloc.dwell.mean() == pytest.approx(0.02, rel=1e-9)


def test_backends_stack_and_are_removed_in_any_order():
    a, b = FakeBackend(), FakeBackend()
    install_compute_backend(a)
    install_compute_backend(b)
    try:
        assert get_compute_backend() is b
        remove_compute_backend(a)  # not the current one: b stays
        assert get_compute_backend() is b
        remove_compute_backend(a)  # not there any more: nothing happens
        remove_compute_backend(b)
        assert get_compute_backend() is THREAD_BACKEND
    finally:
        remove_compute_backend(a)
        remove_compute_backend(b)
    with pytest.raises(TypeError, match="submit"):
        install_compute_backend(object())
