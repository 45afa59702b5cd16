"""The control-socket soak on a tiny scale: every malformed message answered or dropped, none
served, ``status`` still fast, the running job undisturbed."""

import random

import pytest
from dwellwise.benchmarks.daemon_soak import (
    CATEGORIES,
    HARD_OVERSIZE,
    QUICK_REQUEST,
    TRANSPORTS,
    VALID_FRAMES,
    _body_frames,
    daemon_config,
    make_message,
    plan_messages,
    soak,
    soak_tables,
)
from dwellwise.daemon.build import BuildError, build_scan
from dwellwise.daemon.protocol import MAX_REQUEST_BYTES, RequestError, parse_request
from dwellwise.daemon.server import Daemon

VALID_SHAPED = ("nonsense submit", "unknown job id")
"""Classes that parse and are refused by the daemon afterwards (unknown scene, job, ...)."""


@pytest.mark.parametrize("category", [c for c in CATEGORIES if c not in VALID_SHAPED])
def test_generated_messages_are_malformed(category):
    for seed in range(30 if category == "over 1 MiB" else 400):
        for transport in TRANSPORTS:
            frames = make_message(category, random.Random(seed), transport)
            body = _body_frames(frames, transport)
            if len(body) != 1:
                continue  # refused for its number of frames
            with pytest.raises(RequestError):
                parse_request(body[0])
            if category == "over 1 MiB":
                assert len(body[0]) > MAX_REQUEST_BYTES


@pytest.mark.parametrize("category", VALID_SHAPED)
def test_valid_shaped_messages_are_refused_all_the_same(category, tmp_path):
    for seed in range(40):
        (frame,) = make_message(category, random.Random(seed))
        method, params = parse_request(frame)
        if method == "submit":  # the daemon's build refuses it (unknown scene, policy, ...)
            with pytest.raises(BuildError):
                build_scan(params, tmp_path)
        else:
            assert method in ("job", "pause", "resume", "abort")
            assert params.job_id.startswith("soak-")


def test_multi_frame_garbage_is_never_one_valid_frame():
    for seed in range(300):
        for transport in TRANSPORTS:
            frames = make_message("multi-frame garbage", random.Random(seed), transport)
            body = _body_frames(frames, transport)
            assert not (len(body) == 1 and body[0] in VALID_FRAMES)


def test_plan_covers_every_category():
    specs = plan_messages(200, seed=1, hard_oversize=1)
    assert len(specs) == 201
    assert {s.category for s in specs} == {*CATEGORIES, HARD_OVERSIZE}
    assert {s.transport for s in specs} == set(TRANSPORTS)


@pytest.mark.slow
def test_tiny_soak(tmp_path):
    request = {**QUICK_REQUEST, "speedup": 10.0}
    with Daemon(daemon_config(tmp_path)) as daemon:
        res = soak(daemon, 200, request, hard_oversize=1, clients=4)
    results = {o.result for o in res.outcomes}
    assert len(res.outcomes) == 201
    assert results <= {"answered", "dropped"}, [
        (o.category, o.transport, o.result, o.msg) for o in res.outcomes if o.result not in
        ("answered", "dropped")
    ]  # fmt: skip
    dropped = [o for o in res.outcomes if o.result == "dropped"]
    assert all(o.category == HARD_OVERSIZE for o in dropped), dropped
    assert res.after.failures == 0 and len(res.after.ms) == 200
    assert res.after.pct(99) < 50.0, res.after.ms
    job = res.job
    assert job.state_after_soak in ("running", "completed")
    assert job.undisturbed, job
    assert res.ok
    per, summary = soak_tables(res)
    assert "job undisturbed | yes" in summary and "over 16 MiB" in per
