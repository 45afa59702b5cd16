"""``dwellwise bench NAME``: every name leads to a benchmark with ``main(quick)``, and the
optional-PyMca ones say how to install it instead of failing."""

from __future__ import annotations

import importlib
import inspect

import pytest

from dwellwise.cli import BENCHMARKS
from dwellwise.cli import main as cli_main


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_name_has_a_main_taking_quick(name):
    main = importlib.import_module(BENCHMARKS[name]).main
    assert "quick" in inspect.signature(main).parameters


@pytest.mark.parametrize("name", ["element-maps-pymca", "pigments-pymca"])
def test_pymca_benchmarks_explain_a_missing_pymca(name, monkeypatch, capsys):
    module = importlib.import_module(BENCHMARKS[name])
    monkeypatch.setattr(module, "pymca_missing", lambda: "PyMca is not installed (test)")
    assert cli_main(["bench", name, "--quick"]) == 1
    assert "PyMca is not installed" in capsys.readouterr().out


def test_an_unknown_benchmark_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["bench", "no-such-bench"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
