"""The README's IPython session runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import matplotlib

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_session() -> str:
    text = README.read_text()
    match = re.search(r"<!-- readme-ipython-session -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its marked IPython session"
    return match.group(1)


def test_readme_ipython_session_runs(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_session(), "README.md", "exec"), {})
    assert (tmp_path / "astronaut_scan.png").stat().st_size > 10_000
    with h5py.File(tmp_path / "astronaut_scan.h5") as f:
        assert bytes(f["entry/scan_status"][()]).strip() == b"completed"
        assert f["entry/passes/2/rows_complete"][...].all()
