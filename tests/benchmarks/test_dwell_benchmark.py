"""The dwell benchmark: rows, figures and the Markdown table."""

import numpy as np
import pytest
from dwellwise.benchmarks.dwell import markdown_table, run_dwell_benchmark, summarize


def make_scenes():
    yy, xx = np.mgrid[:40, :40]
    disk = 2000.0 * ((yy - 20) ** 2 + (xx - 20) ** 2 < 120) + 20.0
    ramp = 10.0 + 40.0 * xx
    flat = np.ones((1, 8, 8))
    return [("disk", ["Pb L", "Fe K"], np.stack([disk, ramp])), ("flat", ["Ca K"], flat)]


def run(scenes):
    return run_dwell_benchmark(
        scenes, splits=((0.002, 0.008), (0.007, 0.003)),
        policies=["bilevel", "blindspot-sqrt"], seed=3, repeats=2,
    )


@pytest.fixture(scope="module")
def rows():
    return run(make_scenes())


def test_rows_cover_every_case_and_policy(rows):
    assert len(rows) == 3 * 2 * 4
    assert {r["policy"] for r in rows} == {"uniform", "bilevel", "blindspot-sqrt", "oracle"}
    for r in rows:
        if r["policy"] == "uniform":
            assert r["gain"] == 0.0
        if r["policy"] == "oracle" and r["gain"] > 0:
            assert r["efficiency"] == pytest.approx(1.0)
        assert r["wall_s"] >= 0
        assert np.isfinite(r["rmse"]) and np.isfinite(r["bias"])


def test_adaptive_policies_gain_on_a_contrasted_map(rows):
    disk = [r for r in rows if r["element"] == "Pb L" and r["split"] == "2+8"]
    by = {r["policy"]: r for r in disk}
    assert by["oracle"]["gain"] > 0.15
    assert by["blindspot-sqrt"]["efficiency"] > 0.6


def test_reproducible(rows):
    assert [r["rmse"] for r in run(make_scenes())] == [r["rmse"] for r in rows]


def test_markdown_and_summary(rows):
    table = markdown_table(rows)
    for name in ("uniform", "bilevel", "blindspot-sqrt", "oracle", "disk", "Pb L", "7+3"):
        assert name in table
    s = summarize(rows)
    assert s["uniform"]["beats_uniform"] == 0.0
    assert s["oracle"]["mean_efficiency"] == pytest.approx(1.0)


def test_dwell_map_png(tmp_path):
    from dwellwise.benchmarks.dwell import plot_dwell_maps

    disk = make_scenes()[0][2][0]
    out = plot_dwell_maps(disk, 0.002, 0.008, tmp_path / "dwell.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
