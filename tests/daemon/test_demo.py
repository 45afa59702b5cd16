"""The demo runs to completion at a reduced size and leaves its cube file and pictures."""

from __future__ import annotations

import io

import h5py
from dwellwise.daemon.demo import run_demo, summary_lines


def test_demo_runs_to_completion_at_reduced_size(tmp_path):
    bar = io.StringIO()
    result = run_demo(
        tmp_path, request={"shape": [8, 10], "budget": 30.0, "speedup": 10.0}, bar_out=bar
    )
    assert result.job["state"] == "completed"
    assert "pass 2/2" in bar.getvalue()
    with h5py.File(result.cube_file) as f:
        assert f["entry/passes/1/rows_complete"][...].all()
        assert f["entry/budget_used_s"][()] <= 30.0
    assert len(result.pngs) == 3 and all(p.stat().st_size > 5_000 for p in result.pngs)
    text = "\n".join(summary_lines(result))
    assert "of the 30 s budget" in text and str(result.cube_file) in text
    assert "dwell policy: " in text and "compute between passes: " in text
