"""bench element-maps: tables and the goal verdicts from held-out figures."""

from __future__ import annotations

from dwellwise.benchmarks.element_maps import element_table, summary_table, verdict, z_table
from dwellwise.models.element_nets import EXTRAS, OUTPUTS, TARGETS
from dwellwise.models.map_metrics import ElementSummary


def _summary(ssim: float, pearson: float, absent: tuple[str, ...] = ()) -> dict:
    out = {}
    for name in OUTPUTS:
        scenes = 0 if name in absent else 3
        value = float("nan") if scenes == 0 else None
        out[name] = ElementSummary(
            scenes=scenes,
            ssim=value if value is not None else ssim,
            pearson=value if value is not None else pearson,
            slope=value if value is not None else 1.0,
            z=(0.9, 0.1, 0.0, 0.0),
        )
    return out


def _figures(net_ssim: float, base_ssim: float) -> dict:
    net = _summary(net_ssim, 0.995, absent=("S_K",))
    base = _summary(base_ssim, 0.99, absent=("S_K",))
    return {
        "1DCNN+": {"expected": net, "detected": net},
        "linear fit": {"expected": base, "detected": base},
    }


def test_verdict_marks_goals_met_and_not_met() -> None:
    good = verdict(_figures(0.985, 0.97), speed=25_000)
    assert all("NOT met" not in line for line in good)
    assert any("S_K" in line for line in good)  # a target never present is named
    bad = verdict(_figures(0.95, 0.97), speed=10_000)
    text = "\n".join(bad)
    assert "mean SSIM 0.950 (NOT met" in text
    assert "-0.020 SSIM (NOT met: ≥ −0.01)" in text
    assert "10,000 spectra/s (NOT met" in text


def test_tables_list_every_target_and_method() -> None:
    figures = _figures(0.9, 0.8)
    table = element_table(figures, "expected", "ssim")
    assert table.count("\n") == len(TARGETS) + 2  # header, rule, 12 rows, mean
    assert "| S_K | 0 | – | – |" in table
    assert "**0.900**" in table and "**0.800**" in table
    assert "1DCNN+" in summary_table(figures) and "linear fit" in z_table(figures, "detected")


def test_verdict_checks_the_margin_to_the_linear_fit_at_every_live_time() -> None:
    lines = verdict(_figures(0.985, 0.97), speed=25_000, long_figures={1.0: _figures(0.9, 0.93)})
    long = [line for line in lines if line.startswith("- at 1000 ms")]
    assert len(long) == 2  # against both truths
    assert all("-0.030 SSIM (NOT met" in line for line in long)


def test_the_further_families_get_their_own_table_without_a_mean() -> None:
    table = element_table(_figures(0.9, 0.8), "expected", "ssim", EXTRAS)
    assert table.count("\n") == len(EXTRAS) + 1  # header, rule, one row each
    assert "Sn_L" in table and "mean" not in table and "Fe_K" not in table


def test_pymca_findings_report_each_method_and_the_margin_on_the_other_physics() -> None:
    from dwellwise.benchmarks.element_maps_pymca import findings

    lines = findings({"ours": _figures(0.9, 0.8), "PyMca": _figures(0.9, 0.93)})
    assert "- linear fit: mean SSIM vs detected truth 0.800 → 0.930" in lines
    margin = [line for line in lines if line.startswith("- PyMca physics")]
    assert len(margin) == 2 and all("K_K -0.030 SSIM (NOT met" in line for line in margin)
