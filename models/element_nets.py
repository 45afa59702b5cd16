"""Elemental-map networks of paper 002 (Georvasilis 2023, chapter 4): FCN, FCN+, 1DCNN, 1DCNN+.

Each network maps one pixel's spectrum to the detected rate of each element family (counts/s of
all lines of ``Fe_K``, ``Pb_L``...: the unit of ``Scene.rates`` and of PyXRF's ``xrf_fit``).

**Input and normalisation.** Counts on the model's own :data:`MODEL_AXIS` (1.0-17.0 keV in 400
channels of 40 eV; its channel edges coincide with the default detector's 10 eV edges, so
resampling a default cube onto it is exact 4-to-1 binning). A spectrum with ``N`` counts in the
window enters the network as ``u = counts · E / N`` (mean 1 per channel); the network answers the
*fraction* of the ``N`` counts that belongs to each family, and the predictor multiplies by
``N / live_time``. The model is therefore exactly proportional in the counts (twice the
intensity, twice the rates) and independent of the dwell, and a spectrum with no counts maps to
zero. Predicted rates are clipped at 0 counts/s (rates cannot be negative).

**The prior layer** (section 4.4) holds the pure spectra of the 12 target families on the model
axis (:attr:`SpectrumModel.element_basis`, unattenuated line ratios, escape peaks included), each
scaled to a peak of 1. Its weights are a registered buffer, never a parameter: no optimiser sees
them, and they travel in the weights file. FCN+ takes the 12 dot products ``u · w_i`` as the only
input of its first hidden layer; 1DCNN+ takes the element-wise products ``u ⊙ w_i`` as 12
channels stacked beside the input (13 input channels).

**Sizes.** The thesis works on 4096 channels (FCN 4096-512-64-64-k; 1DCNN five convolutions of
64, 64, 64, 64, 128 kernels, sizes 5, 3, 3, 3, 3, stride 2, ReLU, max pooling 2, dropout 0.05,
a linear output). Here the input has 400 channels, so max pooling follows only the first two
convolutions (five stride-2 convolutions plus five poolings would shrink 400 channels to
nothing; four positions of 48 features reach the output layer), and the convolutions are 24, 24,
24, 24, 48 wide (:data:`CNN_WIDTHS`, 3/8 of the thesis's) so that 1DCNN+ runs at tens of
thousands of spectra per second on two CPU cores. In eval mode 1DCNN+ folds prior layer,
standardisation and first convolution into one exactly equivalent operation (see
:class:`CNN1D`).

**Two fixed affine maps, not in the thesis,** make training converge in a few CPU minutes
instead of 1000 GPU epochs: the input of the first trainable layer (spectrum, dot products or
stacked products) is standardised per feature with statistics of the training spectra, and the
output shares are scaled per family by their standard deviation over the training spectra
(target standardisation). Both are buffers set once before training (:func:`fit_standardisation`)
and saved with the weights. While training, outputs below 0 pass with slope 0.01
(:func:`clip_output`); predictions clip at 0.

**The linear skip** (:class:`LinearSkip`, ``MapNetConfig.linear_skip``, not in the thesis) adds
a fixed linear unmixing of ``u`` to the output: the ridge regression of the training shares on
the normalised spectra, set once before training, with the output scale taken from what it
leaves. The network learns the correction to that linear estimate instead of each share from
nothing; its last layer no longer has to resolve a faint family's 0.05 % of the counts, which it
did coarsely (a faint Cu map at 1 s came out at 0.3-0.5 of the truth). The shipped 1DCNN+ and
its long-dwell network have it (validation aL1 after the same 12 epochs 0.14 and 0.36 against
0.17 and 0.65 without it; the long-dwell network without it reached 0.55 in 24 epochs; the
shipped ones, 24 epochs: 0.13 and 0.33).

**The adaptive L1 loss** (Eq. 4.1) :func:`adaptive_l1` is ``mean(|y − ŷ| / sqrt(y))`` on counts
(the detected counts of each family in the pixel, ``y = rate · live_time``), i.e. the mean
absolute error in units of the Poisson standard deviation of the truth. ``y = 0`` would divide by
zero; the denominator is ``sqrt(max(y, 1))``: a pixel without a photon of a family weighs like
one with one photon.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from dwellwise.models.provenance import weights_provenance
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.spectra import SpectrumModel
from pydantic import BaseModel, Field
from torch import nn

TARGETS = (
    "S_K",
    "K_K",
    "Ca_K",
    "Cr_K",
    "Mn_K",
    "Fe_K",
    "Cu_K",
    "Zn_K",
    "Sr_K",
    "Au_L",
    "Hg_L",
    "Pb_L",
)
"""The 12 element maps of paper 002: K lines of S…Sr, L lines of Au, Hg, Pb."""
EXTRAS = ("Ti_K", "Co_K", "As_K", "Sn_L")
"""Further families the networks map: the other elements of the pigment database whose lines
lie inside the model axis (titanium white, cobalt blue and smalt, emerald green and orpiment,
tin in lead-tin yellow and carmine's substrate)."""
OUTPUTS = TARGETS + EXTRAS
"""Output names of the shipped networks, in order."""
MODEL_AXIS = EnergyAxis(channels=400, gain_kev=0.040, offset_kev=1.015)
"""The networks' input calibration: 400 channels of 40 eV centred on 1.015…16.975 keV (Si K to
Sr Kβ and Pb Lγ); edges at 0.995 + 0.04 i keV, on the default detector's 10 eV edges."""
ARCHITECTURES = ("fcn", "fcn+", "1dcnn", "1dcnn+")
"""Architecture keys as the CLI spells them."""
LABELS = {"fcn": "FCN", "fcn+": "FCN+", "1dcnn": "1DCNN", "1dcnn+": "1DCNN+"}
"""Human names for reports."""
FCN_WIDTHS = (512, 64, 64)
"""Hidden layers of FCN and FCN+ (thesis Figure 4.1)."""
CNN_WIDTHS = (24, 24, 24, 24, 48)
"""Output channels of the five convolutions of 1DCNN and 1DCNN+ (thesis: 64, 64, 64, 64, 128)."""
CNN_KERNELS = (5, 3, 3, 3, 3)
"""Kernel sizes of the five convolutions (thesis)."""
CNN_POOLED = 2
"""Max pooling (kernel 2, stride 2) after the first this-many convolutions."""
CNN_DROPOUT = 0.05
"""Dropout before the output layer (thesis)."""
SKIP_RIDGE = 1e-4
"""Ridge of :meth:`LinearSkip.fit`, as a fraction of the mean diagonal of the Gram matrix."""
SHARE_SCALE_FLOOR = 1e-4
"""Smallest output scale (standard deviation of a family's share over the training spectra)."""
STD_FLOOR = 1e-6
"""Features whose standard deviation over the training spectra is below this are constant."""
PRIOR_CUTOFF = 1e-4
"""Pure-spectrum values below this (of the peak) are set to 0 in the prior layer."""
LEAKY_SLOPE = 0.01
"""Slope below zero of the output clip while training (:func:`clip_output`)."""
Y_FLOOR_COUNTS = 1.0
"""Smallest denominator count of the adaptive L1 loss: ``sqrt(max(y, 1))``."""

Arch = Literal["fcn", "fcn+", "1dcnn", "1dcnn+"]


class MapNetConfig(BaseModel):
    """Everything needed to rebuild a network and read its weights file."""

    arch: Arch
    """``fcn``, ``fcn+``, ``1dcnn`` or ``1dcnn+``."""
    names: tuple[str, ...] = OUTPUTS
    """Output families, e.g. ``Fe_K``; outputs are counts/s in this order."""
    prior: tuple[str, ...] = TARGETS
    """Families whose pure spectra fill the prior layer (``fcn+`` and ``1dcnn+`` only)."""
    channels: int = MODEL_AXIS.channels
    """Input channels of the model axis."""
    gain_kev: float = MODEL_AXIS.gain_kev
    """Channel width of the model axis, keV."""
    offset_kev: float = MODEL_AXIS.offset_kev
    """Centre of channel 0 of the model axis, keV."""
    fcn_widths: tuple[int, ...] = FCN_WIDTHS
    """Hidden layer widths of FCN/FCN+."""
    cnn_widths: tuple[int, ...] = CNN_WIDTHS
    """Convolution widths of 1DCNN/1DCNN+ (one per layer)."""
    cnn_kernels: tuple[int, ...] = CNN_KERNELS
    """Convolution kernel sizes (one per layer)."""
    cnn_pooled: int = Field(default=CNN_POOLED, ge=0)
    """Max pooling after the first this-many convolutions."""
    dropout: float = Field(default=CNN_DROPOUT, ge=0.0, lt=1.0)
    """Dropout probability before the output layer of 1DCNN/1DCNN+."""
    linear_skip: bool = False
    """Add a fixed linear unmixing of the input to the output (:class:`LinearSkip`, not in the
    thesis): the network then learns the correction to the best linear estimate."""

    @property
    def axis(self) -> EnergyAxis:
        return EnergyAxis(
            channels=self.channels, gain_kev=self.gain_kev, offset_kev=self.offset_kev
        )

    @property
    def label(self) -> str:
        return LABELS[self.arch]


def prior_spectra(names: Sequence[str], axis: EnergyAxis) -> np.ndarray:
    """``(l, E)`` float32 pure spectra of the families on ``axis``, each scaled to a peak of 1."""
    basis = SpectrumModel(list(names), axis=axis).element_basis
    peak = basis.max(axis=1, keepdims=True)
    if np.any(peak <= 0):
        empty = [n for n, p in zip(names, peak[:, 0], strict=True) if p <= 0]
        raise ValueError(f"families {empty} have no line inside {axis}")
    spectra = basis / peak
    return np.where(spectra >= PRIOR_CUTOFF, spectra, 0.0).astype(np.float32)


class PriorLayer(nn.Module):
    """The fixed prior layer: dot products (``mode="dot"``) or element-wise products stacked
    beside the input (``mode="stack"``) with pure element spectra. Its weights are a buffer."""

    def __init__(self, spectra: np.ndarray | torch.Tensor, mode: Literal["dot", "stack"]) -> None:
        super().__init__()
        if mode not in ("dot", "stack"):
            raise ValueError(f"prior layer mode must be 'dot' or 'stack', got {mode!r}")
        self.mode = mode
        self.register_buffer("weight", torch.as_tensor(np.asarray(spectra), dtype=torch.float32))

    @property
    def n_spectra(self) -> int:
        return int(self.weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, E)`` -> ``(N, l)`` (dot) or ``(N, l + 1, E)`` (stack: input first)."""
        if self.mode == "dot":
            return x @ self.weight.T
        return torch.cat([x[:, None, :], x[:, None, :] * self.weight[None]], dim=1)


class Standardise(nn.Module):
    """Fixed per-feature standardisation ``(x − mean) · scale`` in front of the first trainable
    layer; its statistics are buffers set once from training spectra (:meth:`fit`)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(*shape))
        self.register_buffer("scale", torch.ones(*shape))

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> None:
        """Set mean and 1/std from ``(N, *shape)`` features; a feature that never varies (a
        product with a pure spectrum that is zero there) keeps scale 0 and so stays 0."""
        self.mean.copy_(features.mean(dim=0))
        std = features.std(dim=0)
        self.scale.copy_(torch.where(std > STD_FLOOR, 1.0 / std.clamp_min(STD_FLOOR), 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.scale


class LinearSkip(nn.Module):
    """A fixed linear unmixing ``shares ≈ u · Wᵀ`` added to a network's output.

    ``W`` is the ridge regression of the training spectra's true shares on their normalised
    spectra (:meth:`fit`): the best linear estimate of each family's share that the training
    data allows, a learnt counterpart of a linear fit. Linear in ``u``, it keeps the model
    exactly proportional in the counts, and it has the precision of a matrix product, where a
    network's last layer resolves a faint family's share (0.05 % of the counts) only coarsely.
    Its weights are a buffer, set once before training."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(n_out, n_in))

    @torch.no_grad()
    def fit(self, u: torch.Tensor, shares: torch.Tensor) -> None:
        """Least squares of ``shares (N, k)`` on ``u (N, E)``, with a ridge of
        :data:`SKIP_RIDGE` of the Gram matrix's mean diagonal against collinear channels."""
        x = u.double()
        gram = x.T @ x
        ridge = SKIP_RIDGE * float(torch.diagonal(gram).mean())
        gram += ridge * torch.eye(gram.shape[0], dtype=gram.dtype)
        self.weight.copy_(torch.linalg.solve(gram, x.T @ shares.double()).T.float())

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u @ self.weight.T


class FCN(nn.Module):
    """Fully connected network (thesis Fig. 4.1); with a prior layer it is FCN+ (Fig. 4.5)."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        widths: Sequence[int],
        prior: PriorLayer | None = None,
        skip: LinearSkip | None = None,
    ) -> None:
        super().__init__()
        self.skip = skip
        if prior is not None and prior.mode != "dot":
            raise ValueError("FCN+ needs a prior layer of dot products")
        self.prior = prior
        width_in = prior.n_spectra if prior is not None else n_in
        self.standardise = Standardise((width_in,))
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Linear(width_in, width), nn.ReLU()]
            width_in = width
        layers.append(nn.Linear(width_in, n_out))
        self.body = nn.Sequential(*layers)
        self.register_buffer("output_scale", torch.ones(n_out))

    def inputs(self, u: torch.Tensor) -> torch.Tensor:
        """What the first trainable layer sees before standardisation."""
        return self.prior(u) if self.prior is not None else u

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Normalised spectra ``(N, E)`` -> shares of the counts ``(N, k)`` (unclipped)."""
        return with_skip(self, u, self.body(self.standardise(self.inputs(u))) * self.output_scale)


class CNN1D(nn.Module):
    """1-D convolutional network (thesis Fig. 4.2); with a prior layer it is 1DCNN+ (Fig. 4.6).

    In eval mode 1DCNN+ computes prior layer, standardisation and first convolution as one
    exactly equivalent position-dependent convolution of the input spectrum
    (:meth:`_first_layer_folded`): the 13-channel stack is never built, which saves ~10x the
    arithmetic of the first layer. Training uses the literal stack.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        widths: Sequence[int],
        kernels: Sequence[int],
        pooled: int,
        dropout: float,
        prior: PriorLayer | None = None,
        skip: LinearSkip | None = None,
    ) -> None:
        super().__init__()
        self.skip = skip
        if len(widths) != len(kernels) or not widths:
            raise ValueError(f"{len(widths)} convolution widths but {len(kernels)} kernel sizes")
        if prior is not None and prior.mode != "stack":
            raise ValueError("1DCNN+ needs a prior layer of stacked element-wise products")
        self.prior = prior
        c_in = 1 + (prior.n_spectra if prior is not None else 0)
        self.standardise = Standardise((c_in, n_in))
        self.first = nn.Conv1d(c_in, widths[0], kernels[0], stride=2, padding=kernels[0] // 2)
        layers: list[nn.Module] = []
        length = (n_in + 2 * (kernels[0] // 2) - kernels[0]) // 2 + 1
        c_in = widths[0]
        for i, (width, k) in enumerate(zip(widths, kernels, strict=True)):
            if i > 0:
                layers.append(nn.Conv1d(c_in, width, k, stride=2, padding=k // 2))
                length = (length + 2 * (k // 2) - k) // 2 + 1
            if i < pooled:  # pooling before ReLU: the same values, half the ReLU work
                layers.append(nn.MaxPool1d(2))
                length //= 2
            layers.append(nn.ReLU())
            if length < 1:
                raise ValueError(f"{n_in} input channels are too few for {len(widths)} layers")
            c_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * length, n_out)
        )
        self.register_buffer("output_scale", torch.ones(n_out))

    def inputs(self, u: torch.Tensor) -> torch.Tensor:
        """What the first convolution sees before standardisation: ``(N, C, E)``."""
        return self.prior(u) if self.prior is not None else u[:, None, :]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Normalised spectra ``(N, E)`` -> shares of the counts ``(N, k)`` (unclipped)."""
        if self.prior is not None and not self.training:
            x = self._first_layer_folded(u)
        else:
            x = self.first(self.standardise(self.inputs(u)))
        return with_skip(self, u, self.head(self.features(x)) * self.output_scale)

    def _first_layer_folded(self, u: torch.Tensor) -> torch.Tensor:
        """``first(standardise(prior(u)))`` without the stack. With stacked channel
        ``c`` = ``u · w_c`` (``w_0 = 1``), standardised ``(u · w_c − m_c) · s_c``, the first
        convolution at output position ``p`` is ``b'[o, p] + Σ_k u[2p + k − h] · K'[o, k, p]``
        with ``K'[o, k, p] = Σ_c K[o, c, k] · (w_c s_c)[2p + k − h]`` and
        ``b'[o, p] = b[o] − Σ_{c,k} K[o, c, k] · (m_c s_c)[2p + k − h]`` (zero padding of the
        stack: terms outside the spectrum vanish)."""
        conv = self.first
        k = conv.kernel_size[0]
        half = conv.padding[0]
        weights = torch.cat([torch.ones_like(self.prior.weight[:1]), self.prior.weight])
        gain = weights * self.standardise.scale  # (C, E)
        offset = self.standardise.mean * self.standardise.scale  # (C, E)
        n_out = (u.shape[1] + 2 * half - k) // 2 + 1
        gain_p = nn.functional.pad(gain, (half, half)).unfold(1, k, 2)[:, :n_out]  # (C, P, k)
        offset_p = nn.functional.pad(offset, (half, half)).unfold(1, k, 2)[:, :n_out]
        kernel = torch.einsum("ock,cpk->pko", conv.weight, gain_p)  # (P, k, O)
        bias = conv.bias[None, :] - torch.einsum("ock,cpk->po", conv.weight, offset_p)  # (P, O)
        patches = nn.functional.pad(u, (half, half)).unfold(1, k, 2)[:, :n_out]  # (N, P, k)
        out = torch.baddbmm(bias[:, None, :], patches.transpose(0, 1), kernel)  # (P, N, O)
        return out.permute(1, 2, 0)


def with_skip(network: nn.Module, u: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """``shares`` plus the network's :class:`LinearSkip` of ``u``, when it has one."""
    return shares if network.skip is None else shares + network.skip(u)


def build_network(config: MapNetConfig) -> nn.Module:
    """A freshly initialised network of ``config.arch`` (torch's default initialisation)."""
    n_in, n_out = config.channels, len(config.names)
    skip = LinearSkip(n_in, n_out) if config.linear_skip else None
    if config.arch in ("fcn", "fcn+"):
        prior = (
            PriorLayer(prior_spectra(config.prior, config.axis), "dot")
            if config.arch == "fcn+"
            else None
        )
        return FCN(n_in, n_out, config.fcn_widths, prior, skip)
    prior = (
        PriorLayer(prior_spectra(config.prior, config.axis), "stack")
        if config.arch == "1dcnn+"
        else None
    )
    return CNN1D(
        n_in,
        n_out,
        config.cnn_widths,
        config.cnn_kernels,
        config.cnn_pooled,
        config.dropout,
        prior,
        skip,
    )


def fit_standardisation(
    network: nn.Module, u: torch.Tensor, shares: torch.Tensor | None = None
) -> None:
    """Set the network's fixed input standardisation from normalised training spectra ``u``
    and, given the true ``shares`` of their counts ``(N, k)``, its fixed output scale (each
    family's standard deviation of the share, floored at :data:`SHARE_SCALE_FLOOR`): the last
    layer then works on standardised targets, so trace families are learnt beside major ones.
    A network with a :class:`LinearSkip` fits it first and scales by the standard deviation of
    what the skip leaves (the correction the network learns), which is finer."""
    with torch.no_grad():
        network.standardise.fit(network.inputs(u))
        if shares is None:
            return
        if network.skip is not None:
            network.skip.fit(u, shares)
            shares = shares - network.skip(u)
        network.output_scale.copy_(shares.std(dim=0).clamp_min(SHARE_SCALE_FLOOR))


def clip_output(shares: torch.Tensor) -> torch.Tensor:
    """The output clip while training: identity above 0, slope :data:`LEAKY_SLOPE` below
    (predictions clip at exactly 0)."""
    return nn.functional.leaky_relu(shares, LEAKY_SLOPE)


def normalise(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, E)`` counts -> (``u = counts · E / N``, ``N``): the network input (mean 1 per
    channel; all zeros for an empty spectrum) and the total counts of each spectrum."""
    total = counts.sum(dim=1)
    scale = counts.shape[1] / total.clamp_min(1.0)
    return counts * scale[:, None], total


def adaptive_l1(pred_counts: torch.Tensor, true_counts: torch.Tensor) -> torch.Tensor:
    """Adaptive L1 loss of paper 002 (Eq. 4.1): ``mean(|y − ŷ| / sqrt(max(y, 1)))``, with ``y``
    the true and ``ŷ`` the predicted counts (any shape, averaged over every entry)."""
    denom = torch.sqrt(true_counts.clamp_min(Y_FLOOR_COUNTS))
    return ((true_counts - pred_counts).abs() / denom).mean()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


LONG_DWELL_FROM_S = 0.15
"""Live time (seconds) from which a pixel is answered by the long-dwell network when one is
loaded: inside the range it trains on (0.1-2 s), above the 5-100 ms of the main network."""


class MapNet:
    """A trained elemental-map network as a :class:`~dwellwise.models.predictor.SpectrumPredictor`.

    ``predict(counts, live_time)``: counts ``(N, E)`` on :attr:`axis`, live time ``(N,)`` seconds
    -> ``(N, k)`` float32 counts/s of each family in :attr:`names`. A pixel with no live time
    has no rate: its row is NaN. With :attr:`long_dwell` set, pixels of at least
    :data:`LONG_DWELL_FROM_S` live time are answered by that network instead: a network trained
    at 5-100 ms shrinks weak families toward zero the way noisy spectra call for, which biases
    them on long-dwell spectra (``bench element-maps`` at 1 s: 1DCNN+ mean SSIM 0.871 alone,
    0.892 with the long-dwell network).
    """

    kind = "maps"

    def __init__(
        self,
        network: nn.Module,
        config: MapNetConfig,
        *,
        device: str | torch.device = "auto",
        batch_size: int = 1024,
        info: dict | None = None,
    ) -> None:
        self.config = config
        self.names: tuple[str, ...] = tuple(config.names)
        self.axis = config.axis
        self.label = config.label
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.info = dict(info or {})
        """The weights file's json: recipe, normalisation, held-out figures."""
        self.long_dwell: MapNet | None = None
        """Network for pixels of at least :data:`LONG_DWELL_FROM_S` live time (same outputs and
        axis), or None: this network answers every pixel."""
        self.weights: str | None = None
        """The weights file, its SHA-256 and training command (:func:`weights_provenance`);
        None for a network not loaded from a file."""

    @property
    def provenance(self) -> list[str]:
        """The weights files behind the predictions: this network's and its long-dwell one's."""
        return [m.weights for m in (self, self.long_dwell) if m is not None and m.weights]

    def predict(self, counts: np.ndarray, live_time: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts)
        live = np.asarray(live_time, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[1] != self.axis.channels:
            raise ValueError(
                f"{self.label} expects spectra (N, {self.axis.channels}) on its own axis "
                f"{self.axis}; got shape {counts.shape} (resample with "
                "dwellwise.models.calibration.resample_counts)"
            )
        if live.shape != (counts.shape[0],):
            raise ValueError(f"live_time must have shape ({counts.shape[0]},), got {live.shape}")
        if np.any(live < 0) or not np.all(np.isfinite(live)):
            raise ValueError("live_time must be finite and >= 0 seconds")
        fractions = self._fractions_by_dwell(counts, live)
        total = counts.sum(axis=1, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = fractions * (total / live)[:, None]
        rates[live == 0] = np.nan
        return rates.astype(np.float32)

    def _fractions_by_dwell(self, counts: np.ndarray, live: np.ndarray) -> np.ndarray:
        """:meth:`predict_fractions`, long-dwell pixels by :attr:`long_dwell` when it is set."""
        if self.long_dwell is None:
            return self.predict_fractions(counts)
        long = live >= LONG_DWELL_FROM_S
        if not long.any():
            return self.predict_fractions(counts)
        if long.all():
            return self.long_dwell.predict_fractions(counts)
        out = np.empty((counts.shape[0], len(self.names)), dtype=np.float32)
        out[~long] = self.predict_fractions(counts[~long])
        out[long] = self.long_dwell.predict_fractions(counts[long])
        return out

    def predict_fractions(self, counts: np.ndarray) -> np.ndarray:
        """``(N, E)`` counts -> ``(N, k)`` float32 share of each spectrum's counts per family,
        clipped at 0.

        On the CPU, batches run in parallel in as many Python threads as torch has threads,
        each op single-threaded (torch's thread count is 1 while this runs, then restored):
        batches of short spectra are too small to split inside an op, and on a busy machine
        threads that wait for each other inside every op lose several times their speed."""
        out = np.empty((counts.shape[0], len(self.names)), dtype=np.float32)
        starts = range(0, counts.shape[0], self.batch_size)
        workers = torch.get_num_threads()
        if self.device.type != "cpu" or workers <= 1 or len(starts) < 2:
            for start in starts:
                self._predict_block(counts, start, out)
            return out
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                for _ in pool.map(lambda s: self._predict_block(counts, s, out), starts):
                    pass
        finally:
            torch.set_num_threads(workers)
        return out

    def _predict_block(self, counts: np.ndarray, start: int, out: np.ndarray) -> None:
        with torch.inference_mode():
            block = torch.as_tensor(
                np.asarray(counts[start : start + self.batch_size], dtype=np.float32),
                device=self.device,
            )
            u, _ = normalise(block)
            out[start : start + block.shape[0]] = (
                self.network(u).clamp_min(0.0).float().cpu().numpy()
            )


WEIGHTS_PACKAGE = "dwellwise.models"


def weights_name(arch: str, long_dwell: bool = False) -> str:
    """File name of an architecture's weights: ``maps_1dcnn_plus.pt`` for ``1dcnn+``,
    ``maps_1dcnn_plus_long.pt`` for its long-dwell network."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: use one of {', '.join(ARCHITECTURES)}")
    return f"maps_{arch.replace('+', '_plus')}{'_long' if long_dwell else ''}.pt"


def shipped_weights(arch: str = "1dcnn+", long_dwell: bool = False) -> Path:
    """Path of the packaged weights of an architecture (the file may not exist)."""
    name = weights_name(arch, long_dwell)
    return Path(str(resources.files(WEIGHTS_PACKAGE).joinpath("weights", name)))


def long_dwell_sibling(path: Path) -> Path:
    """Where the long-dwell weights of a weights file lie: ``maps_x.pt`` -> ``maps_x_long.pt``."""
    return path.with_name(f"{path.stem}_long{path.suffix}")


def save_map_model(path: Path, network: nn.Module, config: MapNetConfig, info: dict) -> Path:
    """Write ``path`` (state dict, prior buffer included) and ``path.with_suffix('.json')``
    (config plus ``info``: recipe, normalisation, figures). Returns the json path."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    torch.save(state, path)
    meta = {"config": config.model_dump(mode="json"), **info}
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=1) + "\n")
    return json_path


def load_map_model(path: str | Path | None = None, device: str | torch.device = "auto") -> MapNet:
    """Load elemental-map weights (default: the shipped 1DCNN+) as a :class:`MapNet`, with the
    long-dwell network of :func:`long_dwell_sibling` attached when that file exists.

    Raises ``FileNotFoundError`` naming the missing file and how to make it, and ``ValueError``
    for a file that is not dwellwise map weights, or a long-dwell file that does not match it.
    """
    pt = Path(path) if path is not None else shipped_weights("1dcnn+")
    model = _load_one(pt, device)
    sibling = long_dwell_sibling(pt)
    if not pt.stem.endswith("_long") and sibling.is_file():
        long = _load_one(sibling, device)
        if long.names != model.names or long.axis != model.axis or long.label != model.label:
            raise ValueError(
                f"{sibling}: its outputs, axis or architecture ({long.label}) differ from "
                f"{pt} ({model.label}); retrain it with `dwellwise train maps --long-dwell`"
            )
        model.long_dwell = long
    return model


def _load_one(pt: Path, device: str | torch.device) -> MapNet:
    json_path = pt.with_suffix(".json")
    for f in (pt, json_path):
        if not f.is_file():
            raise FileNotFoundError(
                f"elemental-map weights not found: {f} is missing. Train them with "
                "`dwellwise train maps` (writes the packaged 1DCNN+ weights) or pass the path "
                "of a .pt file written by it (its .json must lie beside it)."
            )
    try:
        meta = json.loads(json_path.read_text())
        config = MapNetConfig(**meta["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{json_path}: not a dwellwise elemental-map weights file ({exc})"
        ) from None
    network = build_network(config)
    try:
        raw = pt.read_bytes()
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (RuntimeError, OSError, EOFError) as exc:
        raise ValueError(
            f"{pt}: weights do not match {config.label} as {json_path} describes it ({exc})"
        ) from None
    model = MapNet(network, config, device=device, info=meta)
    model.weights = weights_provenance(pt.name, raw, meta.get("command"))
    return model
