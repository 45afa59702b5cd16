"""A tiny retrain of the elemental-map network learns; weights round-trip; CLI errors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from dwellwise.models.element_nets import TARGETS, adaptive_l1, load_map_model, shipped_weights
from dwellwise.models.map_data import PixelSimulator
from dwellwise.models.map_training import (
    FULL_RECIPE,
    TrainingRecipe,
    arch_settings,
    fit_network,
    make_datasets,
    train_from_cli,
    train_maps,
)

from dwellwise.cliargs import UsageError

TINY = TrainingRecipe(n_train=6144, n_val=1024, epochs=8, warmup_epochs=2, batch_size=128)


def test_tiny_1dcnn_plus_learns_and_beats_trivial_predictors() -> None:
    train, val = make_datasets(0, TINY)
    result = fit_network(
        "1dcnn+", train, val, seed=0, recipe=TINY, device="cpu", log=lambda s: None
    )
    first_al1 = TINY.warmup_epochs  # index of the first epoch on the adaptive L1 loss
    assert result.train_loss[-1] < 0.7 * result.train_loss[first_al1]
    assert result.val_loss[-1] < result.val_loss[first_al1]
    # held-out pixels from another stream
    test = PixelSimulator().simulate(2048, np.random.default_rng(99))
    y = torch.as_tensor(test.detected * test.live_time[:, None])
    rates = result.predictor().predict(test.counts, test.live_time)
    net_loss = float(adaptive_l1(torch.as_tensor(rates * test.live_time[:, None]), y))
    trivial = [
        float(adaptive_l1(torch.as_tensor(stat[None, :] * test.live_time[:, None]), y))
        for stat in (train.detected.mean(axis=0), np.median(train.detected, axis=0))
    ]
    assert net_loss < 0.6 * min(trivial)
    for name in ("Fe_K", "Zn_K", "Pb_L"):
        i = result.config.names.index(name)
        assert np.corrcoef(rates[:, i], test.detected[:, i])[0, 1] > 0.9, name


@pytest.mark.parametrize(("arch", "linear_skip"), [("fcn+", False), ("1dcnn+", True)])
def test_train_maps_writes_weights_that_load_and_predict_the_same(
    tmp_path, arch: str, linear_skip: bool
) -> None:
    recipe = TrainingRecipe(n_train=512, n_val=128, epochs=1, warmup_epochs=1, batch_size=128)
    out = tmp_path / "maps.pt"
    [result] = train_maps(
        arch,
        seed=1,
        recipe=recipe,
        linear_skip=linear_skip,
        out=out,
        evaluate=False,
        device="cpu",
        log=lambda s: None,
    )
    assert out.is_file() and out.with_suffix(".json").is_file()
    model = load_map_model(out, device="cpu")
    assert model.label == result.config.label
    assert model.info["seed"] == 1 and model.info["recipe"]["n_train"] == 512
    assert model.config.linear_skip == linear_skip
    assert ("--linear-skip" in model.info["command"]) == linear_skip
    data = PixelSimulator().simulate(64, np.random.default_rng(5))
    np.testing.assert_allclose(
        model.predict(data.counts, data.live_time),
        result.predictor().predict(data.counts, data.live_time),
        rtol=1e-5,
        atol=1e-4,
    )


@pytest.mark.parametrize("long_dwell", [False, True])
@pytest.mark.parametrize("arch", ["fcn", "fcn+", "1dcnn", "1dcnn+"])
def test_the_default_training_command_reproduces_the_shipped_weights(
    arch: str, long_dwell: bool
) -> None:
    json_path = shipped_weights(arch, long_dwell).with_suffix(".json")
    if not json_path.is_file():
        pytest.skip(f"no shipped {json_path.name}")
    info = json.loads(json_path.read_text())
    recipe, skip = arch_settings(arch, FULL_RECIPE, None, shipped_epochs=True)
    assert info["recipe"]["epochs"] == recipe.epochs
    assert info["config"].get("linear_skip", False) == skip
    assert info["seed"] == 0 and info["recipe"]["n_train"] == FULL_RECIPE.n_train


def test_cli_refuses_an_unknown_device() -> None:
    args = argparse.Namespace(
        what="maps", arch="1dcnn+", out=None, seed=0, epochs=None, device="tpu", quick=True
    )
    with pytest.raises(UsageError, match="device"):
        train_from_cli(args)


def test_a_long_dwell_network_beside_the_weights_answers_the_long_pixels(tmp_path) -> None:
    from dwellwise.models.element_nets import LONG_DWELL_FROM_S, long_dwell_sibling

    recipe = TrainingRecipe(n_train=512, n_val=128, epochs=1, warmup_epochs=1, batch_size=128)
    quiet = {"evaluate": False, "device": "cpu", "log": lambda s: None, "recipe": recipe}
    out = tmp_path / "maps.pt"
    train_maps("fcn+", seed=1, out=out, **quiet)
    [long] = train_maps("fcn+", seed=2, long_dwell=True, out=long_dwell_sibling(out), **quiet)
    assert long_dwell_sibling(out).name == "maps_long.pt"
    model = load_map_model(out, device="cpu")
    assert model.long_dwell is not None and model.label == "FCN+"
    assert model.long_dwell.info["recipe"]["mixture"]["live_time_s"] == [0.1, 2.0]
    assert "--long-dwell" in model.long_dwell.info["command"]
    data = PixelSimulator().simulate(40, np.random.default_rng(5))
    live = np.where(np.arange(40) % 2 == 0, 0.05, LONG_DWELL_FROM_S)
    got = model.predict(data.counts, live)
    short_only = load_map_model(tmp_path / "maps.pt", device="cpu")
    short_only.long_dwell = None
    np.testing.assert_allclose(got[::2], short_only.predict(data.counts, live)[::2], rtol=1e-5)
    np.testing.assert_allclose(
        got[1::2], long.predictor().predict(data.counts, live)[1::2], rtol=1e-5, atol=1e-4
    )
    # a long-dwell file of another architecture is refused, naming the command that fixes it
    train_maps("fcn", seed=3, long_dwell=True, out=long_dwell_sibling(out), **quiet)
    with pytest.raises(ValueError, match="train maps --long-dwell"):
        load_map_model(out, device="cpu")


def test_a_long_dwell_network_that_does_not_beat_the_packaged_one_is_not_packaged() -> None:
    from types import SimpleNamespace

    from dwellwise.models.map_metrics import ElementSummary
    from dwellwise.models.map_training import _long_dwell_that_helps

    def trained(ssim: float) -> SimpleNamespace:
        s = {n: ElementSummary(scenes=1, ssim=ssim, pearson=0.9, slope=1.0, z=(1, 0, 0, 0))
             for n in TARGETS}  # fmt: skip
        return SimpleNamespace(arch="1dcnn+", config=SimpleNamespace(label="1DCNN+"),
                               heldout={"expected": s, "detected": s})  # fmt: skip

    heldout = {"shape": (12, 12), "images": ("astronaut",), "n_mixtures": 1, "live_time_s": 1.0}
    logged = []
    bad, good = trained(0.05), trained(0.9999)
    assert _long_dwell_that_helps([bad, good], heldout, logged.append) == [good]
    assert len(logged) == 1 and "long-dwell network not written" in logged[0]
