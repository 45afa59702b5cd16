"""Paper 004's pigment CNN, its input, its wrapper, fine-tuning and the shipped weights."""

import math

import numpy as np
import pytest
import torch
from dwellwise.models import pigment_data as pd
from dwellwise.models import pigment_net as pn
from dwellwise.models.predictor import SpectrumPredictor
from dwellwise.simulators.energy import EnergyAxis
from torch import nn

SMALL = EnergyAxis(channels=256, gain_kev=0.080, offset_kev=2.835)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_net(seed: int = 0) -> pn.PigmentNet:
    torch.manual_seed(seed)
    names = pd.pigment_classes()
    return pn.PigmentNet(pn.PigmentCNN(len(names), SMALL.channels), names, SMALL, device="cpu")


def test_architecture_is_paper_004():
    model = pn.PigmentCNN(11)
    blocks = list(model.features)
    assert len(blocks) == 5
    convs = [b[0] for b in blocks]
    assert [c.kernel_size[0] for c in convs] == [5, 3, 3, 3, 3]
    assert [c.out_channels for c in convs] == [64, 64, 64, 64, 128]
    assert convs[0].in_channels == 1
    for b in blocks:
        assert isinstance(b[1], nn.LeakyReLU) and b[1].negative_slope == 0.01
        assert isinstance(b[2], nn.BatchNorm1d)
        assert isinstance(b[3], nn.MaxPool1d) and b[3].kernel_size == 2
    post = model.post[0]
    assert (post.out_channels, post.kernel_size[0]) == (128, 3)
    assert isinstance(model.post[2], nn.BatchNorm1d)
    assert model.dropout.p == 0.25
    assert isinstance(model.output, nn.Sigmoid)
    assert model.head.in_features == 128 * 1024 // 32 and model.head.out_features == 11
    model.eval()
    x = torch.rand(3, 1, 1024)
    assert torch.allclose(model.probabilities(x), torch.sigmoid(model(x)))
    with pytest.raises(ValueError, match="divisible by 32"):
        pn.PigmentCNN(11, 1000)


def test_model_axis_starts_at_2_8_kev_on_whole_detector_channels():
    ax = pn.PIGMENT_AXIS
    assert ax.edges[0] == pytest.approx(2.795) and ax.centers[0] == pytest.approx(2.805)
    assert ax.edges[-1] > 22.72 + 0.3  # the Rh Kβ Rayleigh peak is inside
    # every model channel is exactly two of the default 10 eV detector channels
    assert ax.gain_kev == pytest.approx(0.020)
    assert (ax.edges[0] - 0.005) / 0.010 == pytest.approx(round((ax.edges[0] - 0.005) / 0.010))


def test_paper_transform_formula():
    e = math.e
    assert pn.paper_transform(np.array([0.0]))[0] == 0.0
    assert pn.paper_transform(np.array([(e - 1) ** 2]))[0] == pytest.approx(math.log(2.0))
    x = np.array([0.0, 1.0, 17.0, 1e5])
    expected = np.log(1 + np.log(1 + np.sqrt(x)))
    assert np.allclose(pn.paper_transform(x), expected)
    assert np.allclose(pn.paper_transform(torch.tensor(x)).numpy(), expected)


def test_input_scales_live_time_and_intensity_out():
    rng = np.random.default_rng(0)
    spec = rng.poisson(5.0, size=(1, 256)).astype(np.float32)
    both = torch.from_numpy(np.vstack([spec, 7.0 * spec, np.zeros_like(spec)]))
    x = pn.network_input(both)
    assert x.shape == (3, 1, 256)
    assert torch.allclose(x[0], x[1], atol=1e-5)  # 7× the live time: same input
    assert torch.all(x[2] == 0)
    total = float(both[0].sum())
    assert float(x[0, 0, 0]) == pytest.approx(
        math.log1p(math.log1p(math.sqrt(float(spec[0, 0]) * pn.REFERENCE_TOTAL_COUNTS / total))),
        rel=1e-5,
    )


def test_loss_is_binary_cross_entropy_of_the_sigmoid():
    scores = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.sigmoid(scores)
    manual = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert float(pn.bce_loss(scores, y)) == pytest.approx(float(manual), rel=1e-6)


def test_predictor_protocol_nan_for_unmeasured_and_bad_input():
    net = small_net()
    assert isinstance(net, SpectrumPredictor)
    assert net.kind == "pigments" and net.names == pd.pigment_classes()
    counts = np.random.default_rng(1).poisson(3.0, size=(4, 256)).astype(np.uint32)
    counts[2] = 0
    live = np.array([0.1, 0.0, 0.1, 0.2])
    prob = net.predict(counts, live)
    assert prob.shape == (4, 11) and prob.dtype == np.float32
    assert np.all(np.isnan(prob[1])) and np.all(np.isnan(prob[2]))
    assert np.all((prob[[0, 3]] > 0) & (prob[[0, 3]] < 1))
    with pytest.raises(ValueError, match="resample"):
        net.predict(np.zeros((2, 100)), np.ones(2))
    with pytest.raises(ValueError, match="live_time"):
        net.predict(np.zeros((2, 256)), np.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        net.predict(-np.ones((2, 256)), np.ones(2))


def test_save_load_round_trip_and_missing_files(tmp_path):
    net = small_net()
    card = pn.PigmentModelCard(
        names=list(net.names), axis=pn.AxisCard.of(SMALL), thresholds=[0.4] * 11
    )
    path = pn.save_pigment_model(net, tmp_path / "p.pt", card)
    back = pn.load_pigment_model(path, device="cpu")
    counts = np.random.default_rng(2).poisson(4.0, size=(5, 256))
    assert np.allclose(back.predict(counts, np.ones(5)), net.predict(counts, np.ones(5)))
    assert back.axis == SMALL and np.allclose(back.thresholds, 0.4)
    with pytest.raises(FileNotFoundError, match="dwellwise train pigments"):
        pn.load_pigment_model(tmp_path / "none.pt")
    (tmp_path / "lonely.pt").write_bytes(path.read_bytes())
    with pytest.raises(FileNotFoundError, match="metadata"):
        pn.load_pigment_model(tmp_path / "lonely.pt")
    (tmp_path / "bad.pt").write_bytes(b"not torch")
    (tmp_path / "bad.json").write_text(pn.card_path(path).read_text())
    with pytest.raises(ValueError, match="not a readable torch weights"):
        pn.load_pigment_model(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="unknown device"):
        pn.load_pigment_model(path, device="tpu")


def test_fine_tune_moves_predictions_toward_the_labels():
    net = small_net(seed=1)
    data = pd.simulate_pigment_spectra(128, seed=9, axis=SMALL)
    labels = np.zeros((128, 11), dtype=np.uint8)
    labels[:, 0] = 1  # tell it everything is chrome oxide green, nothing else
    before = net.predict(data.counts, data.live_time)
    conv_before = net.model.features[0][0].weight.detach().clone()
    bn_before = net.model.features[0][2].running_mean.clone()
    result = pn.fine_tune(
        net, data.counts, data.live_time, labels, epochs=6, lr=5e-3, batch_size=32, seed=0
    )
    after = net.predict(data.counts, data.live_time)
    assert result.frozen_epochs == 6 and result.full_epochs == 0 and len(result.losses) == 6
    assert result.losses[-1] < result.losses[0]
    assert after[:, 0].mean() > before[:, 0].mean() + 0.2
    assert after[:, 1:].mean() < before[:, 1:].mean() - 0.2
    # frozen features: the convolutions and their batch-norm statistics did not move
    assert torch.equal(net.model.features[0][0].weight, conv_before)
    assert torch.equal(net.model.features[0][2].running_mean, bn_before)
    # the paper's second stage trains every layer
    pn.fine_tune(net, data.counts, data.live_time, labels, epochs=0, full_epochs=1, seed=0)
    assert not torch.equal(net.model.features[0][0].weight, conv_before)
    with pytest.raises(ValueError, match="labels must be"):
        pn.fine_tune(net, data.counts, data.live_time, labels[:, :5], epochs=1)


@pytest.fixture(scope="module")
def shipped():
    return pn.load_pigment_model(device="cpu")


def test_shipped_weights_load_offline(shipped):
    assert shipped.names == pd.pigment_classes()
    assert shipped.axis == pn.PIGMENT_AXIS
    assert shipped.card is not None and shipped.card.figures["macro_f1"] > 0.7
    assert pn.default_weights_path().stat().st_size < 2_000_000
    [weights] = shipped.provenance  # what analyze writes beside the pigment maps
    assert weights.startswith("pigments_cnn.pt sha256:") and "dwellwise train pigments" in weights


def test_shipped_weights_tell_lead_white_from_vermilion(shipped):
    names = list(shipped.names)
    n = 16
    rows = {}
    for key in ("lead_white", "vermilion"):
        top = np.zeros((n, len(names) + 1))
        top[:, names.index(key)] = 1.0
        layers = pd.PaintLayers(
            top=top,
            bottom=np.zeros_like(top),
            top_um=np.full(n, 60.0),
            bottom_um=np.zeros(n),
            ground_um=np.full(n, 180.0),
            intensity=np.ones(n),
        )
        s = pd.spectra_from_layers(
            layers,
            rng=np.random.default_rng(0),
            recipe=pd.HELDOUT_RECIPE,
            axis=shipped.axis,
            live_time_s=1.0,
            end_to_end=True,
        )
        rows[key] = shipped.predict(s.counts, s.live_time).mean(axis=0)
    lw, rl, vm = (names.index(k) for k in ("lead_white", "red_lead", "vermilion"))
    # lead white is reported (red lead may be too: XRF sees the same Pb in both), vermilion not
    assert rows["lead_white"][lw] >= shipped.thresholds[lw]
    assert rows["lead_white"][lw] + rows["lead_white"][rl] > 0.8
    assert rows["lead_white"][vm] < 0.1
    assert rows["vermilion"][vm] > 0.9
    assert rows["vermilion"][lw] < 0.1 and rows["vermilion"][rl] < 0.1
    # nothing without its element: no cobalt, zinc or copper pigment in either
    for key in ("cobalt_blue", "zinc_white", "emerald_green"):
        assert rows["lead_white"][names.index(key)] < 0.1
        assert rows["vermilion"][names.index(key)] < 0.1
