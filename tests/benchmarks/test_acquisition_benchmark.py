"""The acquisition benchmark on a few tiny scans: no overrun, the tables have their columns."""

import pytest
from dwellwise.benchmarks.acquisition import (
    BUDGET_COLUMNS,
    RASTER,
    STALL_POLICY,
    BudgetCase,
    budget_cases,
    budget_tables,
    run_budget_benchmark,
    summarize_budget,
)

CASES = [
    BudgetCase(
        index=0,
        seed=1,
        scene="procedural",
        shape=(6, 8),
        pixel_size=0.5,
        t0_factor=1.5,
        budget_factor=1.3,
        policy=RASTER,
        passes=1,
        speedup=60.0,
        fault="slow rows",
        slow_rows=((2, 3.0),),
    ),
    BudgetCase(
        index=1,
        seed=2,
        scene="procedural",
        shape=(7, 6),
        pixel_size=0.4,
        t0_factor=1.0,
        budget_factor=1.5,
        policy=STALL_POLICY,
        passes=2,
        speedup=60.0,
        fault="stage stall",
        stalls=((8, 0.02),),
    ),
    BudgetCase(
        index=2,
        seed=3,
        scene="procedural",
        shape=(6, 7),
        pixel_size=0.8,
        t0_factor=2.0,
        budget_factor=1.2,
        policy="blindspot-sqrt",
        passes=3,
        speedup=60.0,
        fault="none",
    ),
]


@pytest.fixture(scope="module")
def rows():
    return run_budget_benchmark(cases=CASES, workers=0)


def test_tiny_scans_end_inside_their_budget(rows):
    assert [r["index"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["error"] == ""
        assert r["used"] <= r["budget"], r
        assert r["budget"] >= 1.2 * r["min_budget"] * 0.999
        assert r["pass1_ok"]
        assert r["status"] == ("truncated" if r["pass1_cut"] else "completed")
    assert rows[1]["fell_back"]  # the stalling policy missed its deadline


def test_tables_have_the_expected_columns(rows):
    summary = summarize_budget(rows)
    assert len(summary) == len(BUDGET_COLUMNS)
    assert summary[0] == 3 and summary[1] == 0  # scans, overruns
    text = budget_tables(rows)
    header = "| " + " | ".join(BUDGET_COLUMNS) + " |"
    assert header in text
    for title in ("injected stage fault", "policy", "passes"):
        assert f"| {title} | " + " | ".join(BUDGET_COLUMNS) + " |" in text
    assert "Compute stalls" in text and "Closest call" in text


def test_randomized_cases_are_reproducible_and_cover_the_space():
    a, b = budget_cases(60, seed=4), budget_cases(60, seed=4)
    assert a == b
    assert {c.passes for c in a} == {1, 2, 3}
    assert all(c.policy == RASTER for c in a if c.passes == 1)
    assert all(6 <= min(c.shape) and max(c.shape) <= 32 for c in a)
    assert any(c.shape[0] != c.shape[1] for c in a)
    assert all(1.05 <= c.budget_factor <= 3.0 and 20 <= c.speedup <= 60 for c in a)
    assert {c.fault for c in a} >= {"none", "slow rows", "stage stall"}
