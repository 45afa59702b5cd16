"""Crash safety: ``kill -9`` of ``dwellwise serve`` mid-scan, restart, ``resume`` by job id.

The end-to-end trials run the daemon as a process (the machinery of
``benchmarks/crash_resume.py``); the rest checks the pieces: the refusal messages, the HDF5
flags a killed writer leaves, a row recorded after the last budget write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from dwellwise.benchmarks.crash_resume import REQUEST, check_cube, run_trial
from dwellwise.daemon.build import BuildError, check_resumable, clear_write_flags
from dwellwise.daemon.ledger import Ledger
from dwellwise.daemon.protocol import JobState
from dwellwise.daemon.runner import Runner, RunnerError
from dwellwise.simulators.energy import EnergyAxis

from dwellwise.cli import main as cli_main
from dwellwise.cube import CubeWriter


def console_resume(address: str, job_id: str) -> tuple[bool, str]:
    """``dwellwise console resume JOB_ID --address ...``, in-process."""
    code = cli_main(["console", "resume", job_id, "--address", address, "--timeout", "10"])
    return code == 0, f"exit code {code}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_after_rows", "delay_s", "by_console"),
    [(11, 0.05, True), (3, 0.02, False)],  # in pass 2 (its recorded dwell map), in pass 1
    ids=["pass2-console", "pass1-client"],
)
def test_kill_9_restart_resume(tmp_path, capsys, kill_after_rows, delay_s, by_console):
    trial = run_trial(
        tmp_path,
        kill_after_rows=kill_after_rows,
        delay_s=delay_s,
        resume_with=console_resume if by_console else None,
    )
    assert not trial.error, trial.error
    assert not trial.missed, "the scan finished before the kill"
    rows, passes = REQUEST["shape"][0], REQUEST["passes"]
    assert 0 < trial.rows_at_kill < rows * passes
    assert trial.interrupted, "after the restart the job is not interrupted"
    assert trial.final_state == "completed"
    # every state change recorded: the first run, the kill, the resumed run
    assert trial.transitions == [
        "queued", "running", "interrupted", "queued", "running", "completed",
    ]  # fmt: skip
    if by_console:
        assert "queued again" in capsys.readouterr().out
    c = trial.check
    assert c.status == "completed"
    assert c.lost_pixels == 0 and c.doubled_pixels == 0, c.details
    assert c.rows_complete[0] == rows  # the first pass always completes
    # every row of every pass, but for rows the budget governor left out at the end of the last
    # pass (a loaded machine: uninterrupted scans do it too; such rows were never recorded)
    missing = rows * passes - sum(c.rows_complete)
    assert missing == c.rows_cut, c.details
    assert missing <= rows // 2, f"{missing} rows missing: {c.details}"
    assert c.budget_used_s <= REQUEST["budget"]
    assert c.budget_used_s > trial.budget_at_kill_s  # the time spent before the kill counted
    with h5py.File(trial.cube_file, "r") as f:
        real = f["entry/data/real_time"][...]
        done = {n: f[f"entry/passes/{n}/rows_complete"][...][:, None] for n in "12"}
        dwell = {n: f[f"entry/passes/{n}/dwell_planned"][...] for n in "12"}
        planned = sum(np.where(done[n], dwell[n], 0.0) for n in "12")
        shortest = min(float(dwell[n][done[n][:, 0]].min()) for n in "12" if done[n].any())
        assert np.all(real >= planned * (1 - 1e-9))  # each pixel visited once per pass ...
        assert np.all(real < planned + 0.5 * shortest)  # ... and not twice
        roi_passes = sum(
            np.where(done[n][None], f[f"entry/passes/{n}/roi_counts"][...].astype(np.int64), 0)
            for n in "12"
        )
        counts = f["entry/data/counts"][...].astype(np.int64)
        windows = f["entry/rois/windows"][...]
        roi_cube = np.stack([counts[..., lo : hi + 1].sum(axis=2) for lo, hi in windows])
        assert np.array_equal(roi_cube, roi_passes)
        ends = np.concatenate([f[f"entry/passes/{n}/row_end_s"][done[n][:, 0]] for n in "12"])
        assert np.all(np.isfinite(ends)) and ends.max() <= REQUEST["budget"]


# -- the pieces ------------------------------------------------------------------------------------
def _cube(path, *, rows=4, cols=3, passes=2, budget_rows=None):
    """A small plan-like cube file; rows of pass 1 recorded, their budget written for
    ``budget_rows`` of them (all by default)."""
    w = CubeWriter(
        path,
        shape=(rows, cols),
        axis=EnergyAxis(channels=32),
        pixel_size=0.5,
        elements=["Fe_K"],
        roi_windows=np.array([[2, 20]]),
        passes=passes,
        metadata={
            "plan_name": "adaptive_scan",
            "request": {"shape": [rows, cols], "pixel_size": 0.5, "budget": 10.0, "t0": 0.01},
        },
    )
    w.set_planned_dwell(1, np.full((rows, cols), 0.01))
    rng = np.random.default_rng(0)
    used = 0.0
    for r in range(rows - 1):
        w.write_row(1, r, rng.integers(0, 3, (cols, 32)), np.full(cols, 0.009), np.full(cols, 0.01))
        used += 0.05
        if budget_rows is None or r < budget_rows:
            w.set_budget_used(used, 1, r)
    return w


def test_missing_cube_file_is_refused_with_the_reason(tmp_path):
    with pytest.raises(BuildError, match="missing; there is nothing to resume"):
        check_resumable(tmp_path / "gone.h5")


def test_corrupt_cube_file_is_refused_as_unreadable(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(200))
    with pytest.raises(BuildError, match="unreadable"):
        check_resumable(path)
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(BuildError, match="unreadable"):
        check_resumable(path)


def test_complete_file_has_nothing_to_resume(tmp_path):
    path = tmp_path / "done.h5"
    w = _cube(path, passes=1)
    w.write_row(1, 3, np.zeros((3, 32)), np.full(3, 0.009), np.full(3, 0.01))
    w.set_budget_used(0.2, 1, 3)
    w.close()
    with pytest.raises(BuildError, match="already holds every pass"):
        check_resumable(path)


def test_runner_refuses_an_interrupted_job_without_its_file_and_keeps_it_interrupted(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.add("lost", dict(REQUEST), tmp_path / "lost.h5")
    ledger.set_state("lost", JobState.RUNNING)
    ledger.set_state("lost", JobState.INTERRUPTED)
    runner = Runner(ledger)
    runner.start()
    try:
        with pytest.raises(RunnerError, match="stays interrupted.*missing"):
            runner.resume("lost")
        assert ledger.get("lost").state == JobState.INTERRUPTED
        assert runner.snapshot()["queue_length"] == 0
    finally:
        runner.stop()
        ledger.close()


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {here!r})
    from test_crash_resume import _cube
    w = _cube({path!r}, budget_rows={budget_rows})
    {before_kill}
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _killed_writer(path, budget_rows=None, before_kill="pass"):
    code = KILLED_WRITER.format(
        here=os.path.dirname(__file__), path=str(path), budget_rows=budget_rows,
        before_kill=before_kill,
    )  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def test_a_killed_writer_leaves_flags_that_are_cleared(tmp_path):
    path = tmp_path / "killed.h5"
    _killed_writer(path)
    with pytest.raises(OSError, match="h5clear"):  # what HDF5 says without the recovery
        h5py.File(path, "r+", libver="latest")
    with h5py.File(path, "r", swmr=True) as f:  # a SWMR reader sees every flushed row
        assert f["entry/passes/1/rows_complete"][...].tolist() == [True, True, True, False]
    assert clear_write_flags(path) is True
    assert clear_write_flags(path) is False  # idempotent
    with h5py.File(path, "r+", libver="latest") as f:
        assert f["entry/passes/1/rows_complete"][...].sum() == 3
    point = check_resumable(path)
    assert point.pass_number == 1 and point.rows_recorded == 3
    assert point.budget_used_s == pytest.approx(0.15) and point.charged_s == 0


def test_clear_write_flags_refuses_a_file_a_live_writer_holds(tmp_path):
    path = tmp_path / "live.h5"
    _cube(path).close()
    with h5py.File(path, "r+", libver="latest"):  # open for writing: flagged and locked
        with pytest.raises(OSError, match="open in another process"):
            clear_write_flags(path)
    assert clear_write_flags(path) is False  # closed cleanly: nothing to clear


def test_a_row_recorded_after_the_last_budget_write_is_charged(tmp_path):
    path = tmp_path / "lagging.h5"
    _killed_writer(path, budget_rows=2)  # row 2 recorded, the kill before its budget write
    point = check_resumable(path)
    assert point.charged_rows == ((1, 2),)
    # its dwell (3 x 10 ms) plus the largest row overhead seen (50 ms - 30 ms)
    assert point.charged_s == pytest.approx(0.05)
    assert point.budget_used_s == pytest.approx(0.15)
    with h5py.File(path, "r") as f:
        assert f["entry/passes/1/row_end_s"][2] == pytest.approx(0.15)
    assert check_resumable(path).charged_s == 0  # charged once


def test_a_kill_inside_write_row_leaves_the_summed_times_untouched(tmp_path):
    path = tmp_path / "half.h5"
    kill_after_the_summed_times = (
        "import h5py\n"
        "orig = h5py.Dataset.__setitem__\n"
        "n = [0]\n"
        "def setitem(self, key, value):\n"
        "    orig(self, key, value)\n"
        "    n[0] += 1\n"
        "    if n[0] == 4:  # counts, live_time, real_time, then the pass's live_time\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "h5py.Dataset.__setitem__ = setitem\n"
        "w.write_row(1, 3, np.ones((3, 32)), np.full(3, 0.009), np.full(3, 0.01))"
    )
    _killed_writer(path, before_kill=kill_after_the_summed_times)
    point = check_resumable(path)
    assert point.partial_rows == ()
    check = check_cube(path, budget_s=10.0)
    assert check.doubled_pixels == 0
    with h5py.File(path, "r") as f:
        assert not f["entry/passes/1/rows_complete"][3]
        assert np.all(f["entry/data/live_time"][3] == 0)


def test_a_row_flagged_without_its_data_is_measured_again(tmp_path):
    """A writer killed mid-flush could leave a row's ``rows_complete`` flag on disk without its
    data (HDF5 writes a flush's chunks in no set order): resuming measures that row again."""
    path = tmp_path / "torn.h5"
    _cube(path).close()
    with h5py.File(path, "r+", libver="latest") as f:  # the torn flush: flag yes, data no
        f["entry/passes/1/live_time"][1] = 0.0
        f["entry/data/live_time"][1] = 0.0
    point = check_resumable(path)
    assert point.reopened_rows == ((1, 1),)
    assert point.rows_recorded == 2
    with h5py.File(path, "r") as f:
        assert f["entry/passes/1/rows_complete"][...].tolist() == [True, False, True, False]
    assert check_resumable(path).reopened_rows == ()  # repaired once


def test_write_row_flushes_the_data_before_the_flag(tmp_path):
    """The flag that vouches for a row is set only after a flush that carried its data."""
    w = _cube(tmp_path / "order.h5", rows=2)
    events = []
    flush, setitem = w._f.flush, h5py.Dataset.__setitem__

    def spy_setitem(self, key, value):
        events.append("flag" if self.name.endswith("rows_complete") else "data")
        setitem(self, key, value)

    w._f.flush = lambda: (events.append("flush"), flush())
    h5py.Dataset.__setitem__ = spy_setitem
    try:
        w.write_row(1, 1, np.ones((3, 32)), np.full(3, 0.009), np.full(3, 0.01))
    finally:
        h5py.Dataset.__setitem__ = setitem
        w._f.flush = flush
        w.close()
    flag = events.index("flag")
    assert "flush" in events[:flag] and events[flag - 1] == "flush" and events[-1] == "flush"
    assert events[:flag].count("data") >= 4
