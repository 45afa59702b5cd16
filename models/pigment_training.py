"""``dwellwise train pigments``: pretrain paper 004's 1D CNN on simulated two-layer spectra.

Recipe (seeded, :data:`FULL`): 12,000 training stacks and 1,500 validation stacks of
:data:`~dwellwise.models.pigment_data.TRAINING_RECIPE`; every epoch draws new live times and new
Poisson counts for the training stacks (fresh noise, same paint); Adam at 1e-3 (as the paper)
with cosine decay, batch 64, binary cross-entropy; the weights of the epoch with the lowest
validation loss are kept, and the per-pigment thresholds that maximise F1 on the validation set
are stored with them. Held-out figures come from 2,000 stacks of other seeds drawn off the
training thickness grid, counted photon by photon on the detector's 4096 channels and resampled
(:data:`~dwellwise.models.pigment_data.HELDOUT_RECIPE`), at the reference live time of 1 s.
About 6 minutes on 2 CPU cores (the shipped weights: 348 s on two pinned Xeon cores, torch
with 2 threads), 23 s on an H100.

``quick`` is a tiny configuration (a 256-channel axis of 80 eV, 1,500 stacks, 4 epochs) for tests
and CI: it learns, but its weights are not for analysis. Without ``--out`` it writes
``pigments_cnn_quick.pt`` in the current folder, never over the shipped weights.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from dwellwise.models.pigment_data import (
    HELDOUT_RECIPE,
    HELDOUT_STREAM,
    TRAIN_STREAM,
    TRAINING_RECIPE,
    VALIDATION_STREAM,
    PigmentRecipe,
    PigmentSamples,
    simulate_pigment_spectra,
)
from dwellwise.models.pigment_metrics import (
    best_thresholds,
    macro_f1,
    per_class_scores,
    threshold,
)
from dwellwise.models.pigment_net import (
    PIGMENT_AXIS,
    AxisCard,
    PigmentCNN,
    PigmentModelCard,
    PigmentNet,
    bce_loss,
    default_weights_path,
    network_input,
    resolve_device,
    save_pigment_model,
)
from dwellwise.simulators.energy import EnergyAxis
from pydantic import BaseModel, ConfigDict, Field

QUICK_WEIGHTS = Path("pigments_cnn_quick.pt")
"""Where ``--quick`` writes when no ``--out`` is given (current folder)."""


class TrainConfig(BaseModel):
    """Sizes and optimiser settings of one training run."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    n_train: int = Field(ge=8)
    """Training stacks (new noise every epoch)."""
    n_validation: int = Field(ge=8)
    """Validation stacks: early stopping and thresholds."""
    n_heldout: int = Field(ge=8)
    """Held-out stacks for the figures written beside the weights."""
    epochs: int = Field(ge=1)
    """Default number of epochs."""
    batch_size: int = Field(64, ge=2)
    """Spectra per step (paper 004: 64)."""
    lr: float = Field(1e-3, gt=0)
    """Initial Adam learning rate (paper 004: 1e-3), cosine-decayed to 1 % of it."""
    axis: EnergyAxis = PIGMENT_AXIS
    """Input calibration."""
    recipe: PigmentRecipe = TRAINING_RECIPE
    """Training stacks."""
    heldout_recipe: PigmentRecipe = HELDOUT_RECIPE
    """Held-out stacks."""


FULL = TrainConfig(n_train=12_000, n_validation=1_500, n_heldout=2_000, epochs=12)
"""The recipe of the shipped weights."""
QUICK = TrainConfig(
    n_train=1_500,
    n_validation=300,
    n_heldout=400,
    epochs=4,
    axis=EnergyAxis(channels=256, gain_kev=0.080, offset_kev=2.835),
)
"""Tiny configuration: 256 channels of 80 eV over the same 2.795-23.275 keV."""


@dataclass
class TrainReport:
    """Outcome of :func:`train_pigments`."""

    net: PigmentNet
    """The trained classifier (best validation epoch, thresholds set)."""
    card: PigmentModelCard
    """Its metadata, as written beside the weights."""
    path: Path | None
    """Weights file written, or None."""
    losses: list[float]
    """Mean training loss of each epoch."""
    validation_losses: list[float]
    """Validation loss after each epoch."""
    heldout: PigmentSamples
    """The held-out set the figures were measured on."""
    heldout_probabilities: np.ndarray
    """``(N, P)`` probabilities on the held-out set."""


def evaluate_loss(model: PigmentCNN, samples: PigmentSamples, device: torch.device) -> float:
    """Mean binary cross-entropy of a model on a sample set (eval mode)."""
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for s in range(0, len(samples), 1024):
            x = network_input(torch.from_numpy(samples.counts[s : s + 1024]).to(device))
            y = torch.from_numpy(samples.labels[s : s + 1024]).to(device)
            total += float(bce_loss(model(x), y)) * y.shape[0]
    return total / len(samples)


def figures(samples: PigmentSamples, prob: np.ndarray, thresholds: np.ndarray) -> dict:
    """Per-class and macro figures against the detectable labels and the paper's ``present``."""
    pred = threshold(prob, thresholds)
    scores = per_class_scores(samples.labels, pred, samples.names)
    present = per_class_scores(samples.present, pred, samples.names)
    return {
        "n": len(samples),
        "macro_f1": macro_f1(scores),
        "macro_f1_present_any_layer": macro_f1(present),
        "per_class": {s.name: s.model_dump(exclude={"name"}) for s in scores},
    }


def train_pigments(
    *,
    seed: int = 0,
    epochs: int | None = None,
    device: str = "auto",
    quick: bool = False,
    out: Path | None = None,
    config: TrainConfig | None = None,
    write: bool = True,
    log: Callable[[str], None] = print,
) -> TrainReport:
    """Train the classifier from scratch and (``write``) save weights + card to ``out``
    (default: the shipped weights, or ``pigments_cnn_quick.pt`` with ``quick``)."""
    cfg = config or (QUICK if quick else FULL)
    n_epochs = epochs if epochs is not None else cfg.epochs
    if n_epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {n_epochs}")
    dev = resolve_device(device)
    started = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, TRAIN_STREAM, 0])
    log(
        f"pigments: simulating {cfg.n_train} training + {cfg.n_validation} validation stacks "
        f"on {cfg.axis.channels} channels of {cfg.axis.gain_kev * 1e3:g} eV (seed {seed})"
    )
    train = simulate_pigment_spectra(
        cfg.n_train, seed=[seed, TRAIN_STREAM], axis=cfg.axis, recipe=cfg.recipe
    )
    val = simulate_pigment_spectra(
        cfg.n_validation, seed=[seed, VALIDATION_STREAM], axis=cfg.axis, recipe=cfg.recipe
    )
    names = train.names
    model = PigmentCNN(len(names), cfg.axis.channels).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = math.ceil(cfg.n_train / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=n_epochs * steps_per_epoch, eta_min=cfg.lr * 0.01
    )
    gen = torch.Generator().manual_seed(seed)
    losses, val_losses = [], []
    best_state, best_val = None, math.inf
    for epoch in range(n_epochs):
        t0 = time.perf_counter()
        data = train.redraw(rng, cfg.recipe)
        x_all = torch.from_numpy(data.counts)
        y_all = torch.from_numpy(data.labels)
        order = torch.randperm(len(data), generator=gen)
        model.train()
        total = 0.0
        for s in range(0, len(data), cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            if idx.numel() < 2:
                continue
            x = network_input(x_all[idx].to(dev))
            y = y_all[idx].to(dev)
            opt.zero_grad()
            loss = bce_loss(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / len(data))
        val_losses.append(evaluate_loss(model, val, dev))
        if val_losses[-1] < best_val:
            best_val = val_losses[-1]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log(
            f"epoch {epoch + 1:>3}/{n_epochs}  loss {losses[-1]:.4f}  "
            f"validation loss {val_losses[-1]:.4f}  ({time.perf_counter() - t0:.0f} s)"
        )
    model.load_state_dict(best_state)
    net = PigmentNet(model, names, cfg.axis, device=dev)
    val_prob = net.predict(val.counts, val.live_time)
    net.thresholds = best_thresholds(val.labels, val_prob)
    train_seconds = time.perf_counter() - started

    heldout = simulate_pigment_spectra(
        cfg.n_heldout,
        seed=[seed, HELDOUT_STREAM],
        axis=cfg.axis,
        recipe=cfg.heldout_recipe,
        live_time_s=cfg.recipe.reference_live_time_s,
        end_to_end=True,
    )
    prob = net.predict(heldout.counts, heldout.live_time)
    figs = figures(heldout, prob, net.thresholds)
    figs["live_time_s"] = cfg.recipe.reference_live_time_s
    figs["prior_macro_f1"] = prior_macro_f1(train, heldout)
    log(
        f"held-out ({cfg.n_heldout} spectra, {cfg.recipe.reference_live_time_s:g} s live, "
        f"photon-counted and resampled): macro-F1 {figs['macro_f1']:.3f} "
        f"(class-prior predictor {figs['prior_macro_f1']:.3f}; paper's any-layer labels "
        f"{figs['macro_f1_present_any_layer']:.3f})"
    )
    for name, sc in figs["per_class"].items():
        log(
            f"  {name:<20} accuracy {sc['accuracy']:.3f}  sensitivity {sc['sensitivity']:.3f}  "
            f"F1 {sc['f1']:.3f}  (threshold {net.thresholds[names.index(name)]:.2f})"
        )
    card = PigmentModelCard(
        names=list(names),
        axis=AxisCard.of(cfg.axis),
        thresholds=[float(t) for t in net.thresholds],
        recipe={
            "training": cfg.recipe.model_dump(),
            "heldout": cfg.heldout_recipe.model_dump(),
            "n_train": cfg.n_train,
            "n_validation": cfg.n_validation,
            "n_heldout": cfg.n_heldout,
            "noise": "new live times and Poisson counts for the training stacks every epoch",
            "quick": quick,
        },
        training={
            "command": "dwellwise train pigments" + (" --quick" if quick else ""),
            "seed": seed,
            "epochs": n_epochs,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "best_epoch": int(np.argmin(val_losses)) + 1,
            "loss": [round(v, 5) for v in losses],
            "validation_loss": [round(v, 5) for v in val_losses],
            "seconds": round(train_seconds, 1),
            "device": str(dev),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        figures=figs,
    )
    net.card = card
    path = None
    if write:
        target = out if out is not None else (QUICK_WEIGHTS if quick else default_weights_path())
        path = save_pigment_model(net, target, card)
        log(f"wrote {path} and {path.with_suffix('.json').name} ({train_seconds:.0f} s training)")
    return TrainReport(net, card, path, losses, val_losses, heldout, prob)


def prior_macro_f1(train: PigmentSamples, test: PigmentSamples) -> float:
    """Macro-F1 of the best input-blind predictor: report a class everywhere when its training
    prevalence makes that F1-optimal (it is, for any prevalence > 0), i.e. always 'present'."""
    prevalence = train.labels.mean(axis=0)
    pred = np.broadcast_to(prevalence > 0, test.labels.shape)
    return macro_f1(per_class_scores(test.labels, pred, test.names))


def train_from_cli(args: argparse.Namespace) -> int:
    """Entry point of ``dwellwise train pigments``."""
    from dwellwise.cliargs import UsageError

    try:
        resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out is not None and args.out.suffix != ".pt":
        raise UsageError(
            f"--out must name a .pt file (its card is written beside it), got {args.out}"
        )
    train_pigments(
        seed=args.seed,
        epochs=args.epochs,
        device=args.device,
        quick=args.quick,
        out=args.out,
    )
    return 0
