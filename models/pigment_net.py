"""Pigment identification per pixel: the 1D CNN of paper 004 (Xu et al.) and its wrapper.

Architecture, as in the paper (Fig. 2, §2.3): five blocks of [1D convolution, LeakyReLU
(slope 0.01), batch normalisation, max pooling by 2] with 64, 64, 64, 64, 128 kernels of sizes
5, 3, 3, 3, 3; then a post-convolution of 128 kernels of size 3 with its normalisation, dropout
0.25, a flatten and one fully connected layer to one score per pigment; a sigmoid turns the
scores into independent probabilities (multi-label), trained with binary cross-entropy. The paper
leaves the padding and the activation after the post-convolution open: here convolutions keep the
length ("same" padding) and the post-convolution has the blocks' LeakyReLU.

Input. The spectrum starts at 2.8 keV (the paper drops S K / Pb M / Hg M below it) and is
transformed by ``X' = log(1 + log(1 + sqrt(X)))`` (paper Eq. 1). The model's own axis
(:data:`PIGMENT_AXIS`) has 1024 channels of 20 eV whose edges run from 2.795 to 23.275 keV: each
channel is exactly two channels of dwellwise's default 10 eV calibration (no counts are split when
a cube is resampled), 20 eV still samples a 125-150 eV FWHM peak with 6-8 channels, the range
holds every line of the 11 pigments and the Rh Rayleigh/Compton peaks (up to 22.7 keV), and the
network costs a quarter of the paper's 3815-channel input on a CPU.

Live time and intensity. Paper 004 transforms raw counts of 10 s spectra. A dwellwise cube mixes
pixels of different live times, and the excitation intensity varies from pixel to pixel (tube
distance, relief), so before the transform every spectrum is scaled to the same total,
``X = counts · REFERENCE_TOTAL_COUNTS / Σ counts`` (the total over the model's axis). A pixel's
live time and intensity scale all its lines together and cancel exactly; what they leave is the
noise of the spectrum, which training covers by drawing live times from 0.02 s to 3 s
(:mod:`dwellwise.models.pigment_data`). Live time is used only to recognise pixels that were not
measured: a pixel with no live time or no counts gets NaN probabilities.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dwellwise.models.provenance import weights_provenance
from dwellwise.simulators.energy import EnergyAxis
from pydantic import BaseModel, Field, ValidationError
from torch import nn
from torch.nn import functional as F

PIGMENT_AXIS = EnergyAxis(channels=1024, gain_kev=0.020, offset_kev=2.805)
"""The classifier's energy calibration: 1024 × 20 eV, channel centres 2.805-23.265 keV."""
REFERENCE_TOTAL_COUNTS = 1.0e5
"""Every spectrum is scaled to this many counts over the model's axis before the transform."""
BLOCK_CHANNELS = (64, 64, 64, 64, 128)
"""Kernels of the five convolution blocks (paper 004)."""
KERNEL_SIZES = (5, 3, 3, 3, 3)
"""Kernel sizes of the five convolution blocks (paper 004)."""
POST_CHANNELS = 128
"""Kernels of the post-convolution (paper 004)."""
POST_KERNEL = 3
"""Kernel size of the post-convolution (paper 004)."""
LEAKY_SLOPE = 0.01
"""LeakyReLU slope: f(x) = max(0.01 x, x) (paper 004)."""
DROPOUT = 0.25
"""Dropout rate before the fully connected layer (paper 004)."""
WEIGHTS_FILE = "pigments_cnn.pt"
"""Name of the shipped weights in ``dwellwise.models/weights/`` (metadata: same stem, .json)."""
PREDICT_BATCH = 2048
"""Spectra per forward pass in :meth:`PigmentNet.predict`."""


def paper_transform(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Paper 004 Eq. 1: ``log(1 + log(1 + sqrt(x)))`` (natural logs), for x ≥ 0."""
    if isinstance(x, torch.Tensor):
        return torch.log1p(torch.log1p(torch.sqrt(x)))
    return np.log1p(np.log1p(np.sqrt(np.asarray(x, dtype=np.float64))))


def network_input(counts: torch.Tensor) -> torch.Tensor:
    """Counts ``(N, E)`` on the model's axis -> network input ``(N, 1, E)``: scaled to
    ``REFERENCE_TOTAL_COUNTS`` per spectrum, then :func:`paper_transform`. Rows without counts
    stay all zero."""
    total = counts.sum(dim=1, keepdim=True)
    scale = torch.where(total > 0, REFERENCE_TOTAL_COUNTS / total.clamp_min(1e-12), 0.0)
    return paper_transform(counts * scale).unsqueeze(1)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU here")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    return dev


class ConvBlock(nn.Sequential):
    """Conv1d ('same' padding) -> LeakyReLU -> BatchNorm1d -> MaxPool1d(2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.BatchNorm1d(c_out),
            nn.MaxPool1d(2),
        )


class PigmentCNN(nn.Module):
    """Paper 004's 1D CNN. ``forward`` returns the scores (logits) ``(N, P)``;
    :meth:`probabilities` applies the sigmoid output layer."""

    def __init__(self, n_classes: int, n_channels: int = PIGMENT_AXIS.channels) -> None:
        super().__init__()
        pooled = n_channels // 2 ** len(BLOCK_CHANNELS)
        if n_classes < 1 or pooled < 1 or n_channels % 2 ** len(BLOCK_CHANNELS):
            raise ValueError(
                f"need ≥1 class and an input length divisible by {2 ** len(BLOCK_CHANNELS)}, "
                f"got {n_classes} classes, {n_channels} channels"
            )
        self.n_classes, self.n_channels = n_classes, n_channels
        c_in, blocks = 1, []
        for c_out, k in zip(BLOCK_CHANNELS, KERNEL_SIZES, strict=True):
            blocks.append(ConvBlock(c_in, c_out, k))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.post = nn.Sequential(
            nn.Conv1d(c_in, POST_CHANNELS, POST_KERNEL, padding=POST_KERNEL // 2),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.BatchNorm1d(POST_CHANNELS),
        )
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Linear(POST_CHANNELS * pooled, n_classes)
        self.output = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Transformed spectra ``(N, 1, E)`` -> scores ``(N, P)`` (before the sigmoid)."""
        z = self.post(self.features(x))
        return self.head(torch.flatten(self.dropout(z), 1))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Transformed spectra ``(N, 1, E)`` -> probabilities ``(N, P)``."""
        return self.output(self.forward(x))


def bce_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Paper 004 Eq. 2 averaged over batch and classes: binary cross-entropy of
    ``sigmoid(scores)``, computed from the scores for numerical stability."""
    return F.binary_cross_entropy_with_logits(scores, targets.to(scores.dtype))


class AxisCard(BaseModel):
    """An energy calibration as stored beside the weights."""

    channels: int = Field(ge=32)
    """Number of channels."""
    gain_kev: float = Field(gt=0)
    """Channel width, keV."""
    offset_kev: float
    """Centre of channel 0, keV."""

    def axis(self) -> EnergyAxis:
        return EnergyAxis(self.channels, self.gain_kev, self.offset_kev)

    @classmethod
    def of(cls, axis: EnergyAxis) -> AxisCard:
        return cls(channels=axis.channels, gain_kev=axis.gain_kev, offset_kev=axis.offset_kev)


class PigmentModelCard(BaseModel):
    """The JSON stored beside the weights: what the model is and how it was made."""

    architecture: str = "paper-004-1dcnn"
    """Architecture name (only paper 004's 1D CNN exists)."""
    names: list[str]
    """Pigment keys, in output order."""
    axis: AxisCard
    """Energy calibration of the input."""
    reference_total_counts: float = REFERENCE_TOTAL_COUNTS
    """Total each spectrum is scaled to before the transform."""
    thresholds: list[float]
    """Per-pigment probability above which a pigment is reported present."""
    recipe: dict[str, Any] = {}
    """Data recipe (:class:`~dwellwise.models.pigment_data.PigmentRecipe`) and sizes."""
    training: dict[str, Any] = {}
    """Seed, epochs, device, time, torch version, loss per epoch."""
    figures: dict[str, Any] = {}
    """Held-out figures measured right after training."""


@dataclass(frozen=True)
class FineTuneResult:
    """What :func:`fine_tune` did."""

    losses: list[float]
    """Mean training loss of each epoch."""
    frozen_epochs: int
    """Epochs with the convolution layers frozen (head only)."""
    full_epochs: int
    """Epochs with every layer trainable."""


class PigmentNet:
    """Paper 004's classifier as a :class:`~dwellwise.models.predictor.SpectrumPredictor`:
    spectra ``(N, E)`` on :attr:`axis` -> pigment probabilities ``(N, P)``."""

    kind = "pigments"
    label = "1D CNN (paper 004)"

    def __init__(
        self,
        model: PigmentCNN,
        names: Sequence[str],
        axis: EnergyAxis,
        *,
        thresholds: Sequence[float] | None = None,
        card: PigmentModelCard | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        if model.n_classes != len(names) or model.n_channels != axis.channels:
            raise ValueError(
                f"model has {model.n_classes} outputs and {model.n_channels} inputs, but "
                f"{len(names)} names and an axis of {axis.channels} channels were given"
            )
        self.names: tuple[str, ...] = tuple(names)
        self.axis = axis
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        th = [0.5] * len(names) if thresholds is None else [float(t) for t in thresholds]
        if len(th) != len(names) or not all(0 < t < 1 for t in th):
            raise ValueError("need one threshold in (0, 1) per pigment")
        self.thresholds = np.array(th)
        self.card = card
        self.weights: str | None = None
        """The weights file, its SHA-256 and training command (:func:`weights_provenance`);
        None for a network not loaded from a file."""

    @property
    def provenance(self) -> list[str]:
        """The weights file behind the predictions (empty when not loaded from one)."""
        return [self.weights] if self.weights else []

    def _check(self, counts: np.ndarray, live_time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counts = np.asarray(counts)
        live = np.asarray(live_time, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[1] != self.axis.channels:
            raise ValueError(
                f"counts must be (N, {self.axis.channels}) on the model's axis (resample with "
                f"dwellwise.models.calibration.resample_counts), got shape {counts.shape}"
            )
        if live.shape != (counts.shape[0],):
            raise ValueError(f"live_time must be ({counts.shape[0]},) seconds, got {live.shape}")
        counts = counts.astype(np.float32, copy=False)
        if not np.all(np.isfinite(counts)) or np.any(counts < 0):
            raise ValueError("counts must be finite and >= 0")
        return counts, live

    def predict(self, counts: np.ndarray, live_time: np.ndarray) -> np.ndarray:
        """Pigment probabilities ``(N, P)`` float32 in 0..1; NaN for pixels with no live time
        or no counts on the model's axis (nothing was measured there)."""
        counts, live = self._check(counts, live_time)
        out = np.full((counts.shape[0], len(self.names)), np.nan, dtype=np.float32)
        measured = np.flatnonzero((live > 0) & (counts.sum(axis=1) > 0))
        self.model.eval()
        with torch.inference_mode():
            for s in range(0, measured.size, PREDICT_BATCH):
                rows = measured[s : s + PREDICT_BATCH]
                x = network_input(torch.from_numpy(counts[rows]).to(self.device))
                out[rows] = self.model.probabilities(x).float().cpu().numpy()
        return out

    def present(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, P)`` -> bool ``(N, P)`` with the per-pigment thresholds."""
        return np.asarray(probabilities) >= self.thresholds[None, :]


def default_weights_path() -> Path:
    """Where the shipped weights live (inside the installed package)."""
    return Path(str(resources.files("dwellwise.models").joinpath("weights").joinpath(WEIGHTS_FILE)))


def card_path(weights: Path) -> Path:
    """The JSON metadata beside a weights file."""
    return weights.with_suffix(".json")


def load_pigment_model(path: str | Path | None = None, device: str = "auto") -> PigmentNet:
    """Load a trained classifier (default: the weights shipped in the package), offline.

    Raises ``FileNotFoundError`` when the weights or their JSON card are missing, and
    ``ValueError`` when they do not fit together."""
    with ExitStack() as stack:
        if path is None:
            ref = resources.files("dwellwise.models").joinpath("weights").joinpath(WEIGHTS_FILE)
            weights = stack.enter_context(resources.as_file(ref))
        else:
            weights = Path(path)
        card_file = card_path(weights)
        hint = (
            "train them with `dwellwise train pigments` (a few minutes on a CPU; `--out FILE` "
            "for another place) or pass the path of a weights file"
        )
        if not weights.is_file():
            raise FileNotFoundError(f"no pigment-classifier weights at {weights}: {hint}")
        if not card_file.is_file():
            raise FileNotFoundError(
                f"the pigment weights {weights} have no metadata file {card_file.name} "
                f"beside them: {hint}"
            )
        try:
            card = PigmentModelCard.model_validate_json(card_file.read_text())
        except (ValidationError, ValueError) as exc:
            raise ValueError(f"{card_file}: not a pigment-model card ({exc})") from None
        dev = resolve_device(device)
        try:
            raw = weights.read_bytes()
            state = torch.load(io.BytesIO(raw), map_location=dev, weights_only=True)
        except Exception as exc:  # torch raises many types for a damaged file
            raise ValueError(f"{weights}: not a readable torch weights file ({exc})") from None
        provenance = weights_provenance(weights.name, raw, card.training.get("command"))
    axis = card.axis.axis()
    model = PigmentCNN(len(card.names), axis.channels)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"{weights} does not fit its card ({len(card.names)} pigments, "
            f"{axis.channels} channels): {exc}"
        ) from None
    net = PigmentNet(model, card.names, axis, thresholds=card.thresholds, card=card, device=dev)
    net.weights = provenance
    return net


def save_pigment_model(net: PigmentNet, path: str | Path, card: PigmentModelCard) -> Path:
    """Write the weights (``.pt``) and the card (same stem, ``.json``); returns the weights
    path."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} for the pigment weights does not exist")
    state = {k: v.detach().cpu() for k, v in net.model.state_dict().items()}
    torch.save(state, path)
    card_path(path).write_text(json.dumps(card.model_dump(), indent=1) + "\n")
    return path


def fine_tune(
    model: PigmentNet,
    counts: np.ndarray,
    live_time: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    lr: float = 5e-4,
    freeze_features: bool = True,
    full_epochs: int = 0,
    batch_size: int = 64,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> FineTuneResult:
    """Fine-tune a trained classifier on labelled measured spectra, in place.

    As paper 004 §2.3: with ``freeze_features`` the convolution layers (and their batch-norm
    statistics) stay fixed for ``epochs`` epochs and only the fully connected layer learns; then
    ``full_epochs`` more epochs train every layer. Without ``freeze_features`` all ``epochs``
    train every layer. Adam at ``lr`` (the paper fine-tunes at 5e-4), batch ``batch_size``,
    binary cross-entropy. ``counts`` ``(N, E)`` on ``model.axis``, ``live_time`` ``(N,)`` s,
    ``labels`` ``(N, P)`` 0/1 in ``model.names`` order. ``progress(epoch, loss)`` is called after
    every epoch."""
    counts, live = model._check(counts, live_time)
    y = np.asarray(labels, dtype=np.float32)
    if y.shape != (counts.shape[0], len(model.names)):
        raise ValueError(
            f"labels must be (N={counts.shape[0]}, P={len(model.names)}) in the order "
            f"{', '.join(model.names)}, got {y.shape}"
        )
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    if epochs < 0 or full_epochs < 0 or epochs + full_epochs < 1:
        raise ValueError("need at least one epoch of fine-tuning")
    if not lr > 0 or batch_size < 1:
        raise ValueError("lr must be > 0 and batch_size >= 1")
    keep = (live > 0) & (counts.sum(axis=1) > 0)
    if not keep.any():
        raise ValueError("no spectrum with counts and live time to fine-tune on")
    dev = model.device
    x_all = network_input(torch.from_numpy(counts[keep]).to(dev))
    y_all = torch.from_numpy(y[keep]).to(dev)
    gen = torch.Generator().manual_seed(seed)
    net = model.model
    plan = [True] * epochs if freeze_features else [False] * epochs
    plan += [False] * (full_epochs if freeze_features else 0)
    losses: list[float] = []
    for epoch, frozen in enumerate(plan):
        trainable = net.head.parameters() if frozen else net.parameters()
        for p in net.parameters():
            p.requires_grad_(False)
        params = list(trainable)
        for p in params:
            p.requires_grad_(True)
        if epoch == 0 or frozen != plan[epoch - 1]:
            opt = torch.optim.Adam(params, lr=lr)
        net.train()
        if frozen:  # frozen features keep their batch-norm statistics too
            for m in (*net.features.modules(), *net.post.modules()):
                if isinstance(m, nn.BatchNorm1d):
                    m.eval()
        order = torch.randperm(x_all.shape[0], generator=gen).to(dev)
        total, seen = 0.0, 0
        for s in range(0, order.numel(), batch_size):
            idx = order[s : s + batch_size]
            if idx.numel() < 2 and not frozen:
                continue  # batch norm cannot train on one spectrum
            opt.zero_grad()
            loss = bce_loss(net(x_all[idx]), y_all[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
            seen += idx.numel()
        losses.append(total / max(seen, 1))
        if progress is not None:
            progress(epoch + 1, losses[-1])
    for p in net.parameters():
        p.requires_grad_(True)
    net.eval()
    return FineTuneResult(
        losses=losses,
        frozen_epochs=epochs if freeze_features else 0,
        full_epochs=full_epochs if freeze_features else epochs,
    )
