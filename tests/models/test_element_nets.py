"""Elemental-map networks: prior layer, adaptive L1 loss, shapes, normalisation, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dwellwise.models.element_nets import (
    ARCHITECTURES,
    MODEL_AXIS,
    OUTPUTS,
    TARGETS,
    LinearSkip,
    MapNet,
    MapNetConfig,
    PriorLayer,
    adaptive_l1,
    build_network,
    clip_output,
    fit_standardisation,
    load_map_model,
    normalise,
    prior_spectra,
)
from dwellwise.simulators.paint import PaintStack, pigment_mass
from dwellwise.simulators.pigments import get_pigment
from dwellwise.simulators.spectra import SpectrumModel

SMALL = {"fcn_widths": (32, 16), "cnn_widths": (8, 8, 8, 8, 16)}


def _spectra(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.poisson(2.0, size=(n, MODEL_AXIS.channels)), dtype=torch.float32)


def test_prior_spectra_are_the_targets_pure_spectra_peak_normalised() -> None:
    w = prior_spectra(TARGETS, MODEL_AXIS)
    assert w.shape == (12, MODEL_AXIS.channels)
    np.testing.assert_allclose(w.max(axis=1), 1.0, rtol=1e-6)
    # Fe K's peak sits at Fe Kα (6.40 keV), Pb L's at Pb Lα or Lβ
    fe = MODEL_AXIS.centers[np.argmax(w[TARGETS.index("Fe_K")])]
    assert abs(fe - 6.40) < 0.05
    pb = MODEL_AXIS.centers[np.argmax(w[TARGETS.index("Pb_L")])]
    assert min(abs(pb - 10.55), abs(pb - 12.61)) < 0.05


@pytest.mark.parametrize("arch", ["fcn+", "1dcnn+"])
def test_prior_layer_weights_stay_fixed_through_training(arch: str) -> None:
    torch.manual_seed(0)
    net = build_network(MapNetConfig(arch=arch, **SMALL))
    before = net.prior.weight.clone()
    others = {k: v.clone() for k, v in net.named_parameters()}
    assert not any(p is net.prior.weight for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = _spectra(64)
    y = torch.rand(64, len(OUTPUTS)) * 20
    for _ in range(5):
        u, total = normalise(x)
        loss = adaptive_l1(clip_output(net(u)) * total[:, None], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(net.prior.weight, before)
    assert not net.prior.weight.requires_grad
    changed = [k for k, v in net.named_parameters() if not torch.equal(v, others[k])]
    assert changed  # the trainable layers did learn
    assert "prior.weight" in net.state_dict()  # the fixed weights travel in the weights file


def test_prior_layer_dot_and_stack_forward() -> None:
    w = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    x = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(PriorLayer(w, "dot")(x), torch.tensor([[7.0, 2.0]]))
    stacked = PriorLayer(w, "stack")(x)
    torch.testing.assert_close(
        stacked, torch.tensor([[[1.0, 2.0, 3.0], [1.0, 0.0, 6.0], [0.0, 2.0, 0.0]]])
    )
    with pytest.raises(ValueError, match="dot"):
        PriorLayer(w, "sum")


def test_adaptive_l1_matches_its_formula_and_floors_zero_truth() -> None:
    rng = np.random.default_rng(1)
    y = rng.poisson(3.0, size=(50, 7)).astype(np.float64)
    y[0, :] = 0.0
    yhat = y + rng.normal(0, 2, size=y.shape)
    expected = np.mean(np.abs(y - yhat) / np.sqrt(np.maximum(y, 1.0)))
    got = adaptive_l1(torch.as_tensor(yhat), torch.as_tensor(y))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    # y = 0: the error counts in full (denominator 1); y = 100: divided by 10
    assert float(adaptive_l1(torch.tensor([3.0]), torch.tensor([0.0]))) == pytest.approx(3.0)
    assert float(adaptive_l1(torch.tensor([90.0]), torch.tensor([100.0]))) == pytest.approx(1.0)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_architecture_maps_spectra_to_one_share_per_output(arch: str) -> None:
    torch.manual_seed(0)
    net = build_network(MapNetConfig(arch=arch, **SMALL))
    u, _ = normalise(_spectra(5))
    assert net(u).shape == (5, len(OUTPUTS))
    model = MapNet(net, MapNetConfig(arch=arch, **SMALL), device="cpu")
    rates = model.predict(_spectra(3).numpy(), np.full(3, 0.01))
    assert rates.shape == (3, len(OUTPUTS)) and rates.dtype == np.float32
    assert np.all(rates >= 0)


def test_folded_first_layer_equals_the_literal_prior_stack() -> None:
    torch.manual_seed(0)
    config = MapNetConfig(arch="1dcnn+", dropout=0.0, **SMALL)
    net = build_network(config)
    u, _ = normalise(_spectra(200, seed=3))
    fit_standardisation(net, u)
    net.train()
    literal = net(u)
    net.eval()
    folded = net(u)
    torch.testing.assert_close(folded, literal, rtol=1e-4, atol=1e-5)


def test_linear_skip_recovers_a_linear_unmixing_and_stays_fixed_through_training() -> None:
    rng = np.random.default_rng(4)
    u = torch.as_tensor(rng.gamma(2.0, 0.5, size=(3000, MODEL_AXIS.channels)), dtype=torch.float32)
    mixing = torch.as_tensor(rng.normal(0, 1e-3, size=(len(OUTPUTS), MODEL_AXIS.channels)))
    shares = u @ mixing.float().T
    skip = LinearSkip(MODEL_AXIS.channels, len(OUTPUTS))
    skip.fit(u, shares)
    torch.testing.assert_close(skip(u), shares, rtol=0, atol=1e-3 * float(shares.std()))

    torch.manual_seed(0)
    config = MapNetConfig(arch="1dcnn+", dropout=0.0, linear_skip=True, **SMALL)
    net = build_network(config)
    fit_standardisation(net, u, shares)
    fixed = net.skip.weight.clone()
    assert torch.count_nonzero(fixed) > 0
    assert not any(p is net.skip.weight for p in net.parameters())
    # the output scale is that of what the skip leaves, not of the shares
    assert float(net.output_scale.max()) < 0.1 * float(shares.std(dim=0).min())
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        loss = (net(u[:64]) - shares[:64]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(net.skip.weight, fixed)
    assert "skip.weight" in net.state_dict()
    # eval (folded first layer) and training forward agree with the skip too
    net.train()
    literal = net(u[:50])
    net.eval()
    torch.testing.assert_close(net(u[:50]), literal, rtol=1e-4, atol=1e-6)


def test_predictions_scale_with_counts_and_live_time() -> None:
    torch.manual_seed(0)
    config = MapNetConfig(arch="1dcnn+", **SMALL)
    net = build_network(config)
    counts = _spectra(4).numpy()
    fit_standardisation(net, normalise(torch.as_tensor(counts))[0])
    model = MapNet(net, config, device="cpu")
    live = np.full(4, 0.02)
    base = model.predict(counts, live)
    np.testing.assert_allclose(model.predict(counts, 2 * live), base / 2, rtol=1e-5)
    empty = model.predict(np.zeros((2, MODEL_AXIS.channels)), np.full(2, 0.01))
    assert np.all(empty == 0)
    unmeasured = model.predict(counts[:1], np.zeros(1))
    assert np.all(np.isnan(unmeasured))


def test_predict_rejects_spectra_on_another_axis() -> None:
    config = MapNetConfig(arch="fcn", **SMALL)
    model = MapNet(build_network(config), config, device="cpu")
    with pytest.raises(ValueError, match="resample"):
        model.predict(np.zeros((2, 4096)), np.ones(2))
    with pytest.raises(ValueError, match="live_time"):
        model.predict(np.zeros((2, MODEL_AXIS.channels)), np.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        model.predict(np.zeros((2, MODEL_AXIS.channels)), np.array([1.0, -1.0]))


def test_missing_weights_raise_a_clear_file_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="dwellwise train maps"):
        load_map_model(tmp_path / "nothing.pt")


def test_a_file_that_is_not_map_weights_is_refused(tmp_path) -> None:
    pt = tmp_path / "w.pt"
    pt.write_bytes(b"not torch")
    pt.with_suffix(".json").write_text('{"config": {"arch": "lstm"}}')
    with pytest.raises(ValueError, match="not a dwellwise elemental-map weights file"):
        load_map_model(pt)


def test_shipped_weights_load_offline_and_predict_sensible_rates() -> None:
    model = load_map_model(device="cpu")
    assert model.label == "1DCNN+" and model.kind == "maps"
    assert model.axis == MODEL_AXIS and set(TARGETS) <= set(model.names)
    # lead white over chalk and a thin iron-oxide glaze, counted at 50 ms
    sim = SpectrumModel(["Ca_K", "Fe_K", "Pb_L", "Pb_M"], axis=MODEL_AXIS)
    lw, io, chalk = (get_pigment(k) for k in ("lead_white", "iron_oxide", "calcium_carbonate"))
    stack = PaintStack(sim, [[lw, io], [chalk]])
    masses = [
        np.array([[pigment_mass(lw, 20.0)], [pigment_mass(io, 2.0)]]),
        np.array([[pigment_mass(chalk, 180.0)]]),
    ]
    rates = stack.component_rates(masses, np.ones(1))
    truth = {n: rates[sim.group_of_component == i].sum() for i, n in enumerate(sim.elements)}
    rng = np.random.default_rng(0)
    mean = rates[:, 0] * 0.05
    counts = rng.poisson(np.tile(mean @ sim.basis, (200, 1)))
    pred = model.predict(counts, np.full(200, 0.05)).mean(axis=0)
    got = dict(zip(model.names, pred, strict=True))
    for name in ("Fe_K", "Pb_L"):
        assert got[name] == pytest.approx(truth[name], rel=0.1)
    for absent in ("Cu_K", "Zn_K", "Sr_K", "Hg_L", "Au_L"):
        assert got[absent] < 0.02 * truth["Pb_L"]


def test_loaded_weights_name_their_file_digest_and_training_command() -> None:
    import hashlib

    from dwellwise.models.element_nets import shipped_weights

    model = load_map_model(device="cpu")
    main, long = model.provenance
    digest = hashlib.sha256(shipped_weights("1dcnn+").read_bytes()).hexdigest()[:16]
    assert main.startswith(f"maps_1dcnn_plus.pt sha256:{digest} (dwellwise train maps")
    assert long.startswith("maps_1dcnn_plus_long.pt sha256:") and "--long-dwell" in long


def test_parallel_batches_give_the_same_rates_as_one_batch() -> None:
    torch.manual_seed(0)
    config = MapNetConfig(arch="1dcnn+", **SMALL)
    net = build_network(config)
    counts = _spectra(40, seed=4).numpy()
    fit_standardisation(net, normalise(torch.as_tensor(counts))[0])
    threads = torch.get_num_threads()
    one = MapNet(net, config, device="cpu", batch_size=1000).predict(counts, np.full(40, 0.01))
    many = MapNet(net, config, device="cpu", batch_size=7).predict(counts, np.full(40, 0.01))
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6)
    assert torch.get_num_threads() == threads  # restored
