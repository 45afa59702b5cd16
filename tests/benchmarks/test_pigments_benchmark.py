"""``dwellwise bench pigments --quick``: the per-class table with the hard pairs and baselines."""

import re

import pytest
from dwellwise.benchmarks import pigments

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_quick_benchmark_prints_the_table_and_records_nothing(capsys, monkeypatch):
    recorded = []
    monkeypatch.setattr(pigments, "record_section", lambda *a, **k: recorded.append(a))
    assert pigments.main(quick=True) == 0
    out = capsys.readouterr().out
    for a, b in pigments.HARD_PAIRS:
        assert f"**{a}**" in out and f"**{b}**" in out
        assert f"{a} / {b}" in out
    assert "ROI-ratio LR" in out and "spectrum LR" in out
    row = re.search(r"\| \*\*macro-F1\*\* \|[^\n]*", out).group(0)
    cnn, roi, spec = (float(v) for v in re.findall(r"\d\.\d{3}", row))
    assert cnn > 0.7 and cnn > roi and cnn > spec  # the CNN beats both sanity baselines
    assert recorded == []
