"""Training the pigment classifier: a tiny retrain learns; the CLI writes loadable weights."""

import numpy as np
import pytest
from dwellwise.models import pigment_training as pt
from dwellwise.models.pigment_metrics import macro_f1, per_class_scores, threshold
from dwellwise.models.pigment_net import load_pigment_model
from dwellwise.simulators.energy import EnergyAxis

from dwellwise.cli import main

TINY = pt.TrainConfig(
    n_train=512,
    n_validation=128,
    n_heldout=192,
    epochs=4,
    axis=EnergyAxis(channels=256, gain_kev=0.080, offset_kev=2.835),
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bce(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_tiny_retrain_learns_and_beats_the_class_priors():
    logs = []
    report = pt.train_pigments(seed=0, config=TINY, device="cpu", write=False, log=logs.append)
    assert len(report.losses) == 4 and report.losses[-1] < report.losses[0]
    assert sum(line.startswith("epoch") for line in logs) == 4
    held = report.heldout
    prob = report.heldout_probabilities
    assert not np.any(np.isnan(prob))
    # held-out loss below the loss of predicting every class's training prevalence
    prior = np.broadcast_to(held.labels.mean(axis=0), prob.shape)
    assert _bce(held.labels, prob) < _bce(held.labels, prior) - 0.03
    # and F1 above the best input-blind predictor (report every class everywhere)
    f1 = macro_f1(per_class_scores(held.labels, threshold(prob, report.net.thresholds), held.names))
    assert f1 == pytest.approx(report.card.figures["macro_f1"])
    assert f1 > report.card.figures["prior_macro_f1"] + 0.1
    assert report.card.training["seed"] == 0 and report.card.training["epochs"] == 4


def test_cli_quick_writes_loadable_weights(tmp_path, capsys, monkeypatch):
    micro = TINY.model_copy(update={"n_train": 96, "n_validation": 32, "n_heldout": 32})
    monkeypatch.setattr(pt, "QUICK", micro)  # the CLI wiring, not the learning, is under test
    out = tmp_path / "pig.pt"
    code = main(["train", "pigments", "--quick", "--epochs", "1", "--out", str(out)])
    assert code == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
    net = load_pigment_model(out, device="cpu")
    assert net.axis == micro.axis and len(net.names) == 11
    assert net.card.recipe["quick"] is True
    assert "macro-F1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--out", "x.txt"], "must name a .pt file"), (["--device", "tpu"], "unknown device")],
)
def test_cli_refuses_bad_flags(extra, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "pigments", "--quick", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
