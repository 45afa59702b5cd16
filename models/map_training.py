"""``dwellwise train maps``: train the elemental-map networks on simulated spectra.

The recipe (:class:`TrainingRecipe`, recorded in the weights' json): ``n_train`` random
layered-paint pixels and ``n_val`` validation pixels from two independent streams of the seed
(:mod:`dwellwise.models.map_data`), Adam (learning rate 1e-3 as in paper 002) with a cosine decay
over twelve epochs (24 for 1DCNN+: :data:`SHIPPED_SETTINGS`) instead of the thesis's 1000 epochs
with early stopping; a warm-up of three epochs
on the mean squared error of the standardised count shares, then the adaptive L1 loss on the
detected counts of every output family; the weights of the epoch with the lowest validation
(adaptive L1) loss. Then the held-out figures (:func:`heldout_figures`) on scenes no network sees
in training. Seeded: the same seed, device and thread count give the same weights.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from dwellwise.models.element_nets import (
    ARCHITECTURES,
    LABELS,
    TARGETS,
    MapNet,
    MapNetConfig,
    adaptive_l1,
    build_network,
    clip_output,
    fit_standardisation,
    load_map_model,
    normalise,
    resolve_device,
    save_map_model,
    shipped_weights,
    weights_name,
)
from dwellwise.models.map_data import (
    MixtureRecipe,
    PixelSimulator,
    SpectraSet,
    heldout_scenes,
    predict_scene,
    training_streams,
)
from dwellwise.models.map_metrics import ElementSummary, mean_scored, score_maps, summarise
from pydantic import BaseModel, Field

Log = Callable[[str], None]


class TrainingRecipe(BaseModel):
    """Data and optimisation of one training run."""

    n_train: int = Field(default=200_000, ge=16)
    """Training pixels (one spectrum each)."""
    n_val: int = Field(default=16_384, ge=16)
    """Validation pixels (best-epoch selection)."""
    epochs: int = Field(default=12, ge=1)
    """Passes over the training pixels."""
    warmup_epochs: int = Field(default=3, ge=0)
    """First epochs minimise the mean squared error of the standardised shares (counts of a
    family / counts of the spectrum, over the family's standard deviation) before the adaptive
    L1 loss takes over: from a random start, L1-type losses settle on predicting 0 for every
    family that most spectra lack (its median) and never learn it."""
    batch_size: int = Field(default=256, ge=1)
    """Spectra per optimiser step."""
    learning_rate: float = Field(default=1e-3, gt=0)
    """Adam's initial learning rate (paper 002: 1e-3)."""
    final_learning_rate: float = Field(default=1e-5, gt=0)
    """Learning rate at the end of the cosine decay."""
    standardise_spectra: int = Field(default=65_536, ge=16)
    """Training spectra used for the fixed input standardisation and output scale."""
    target: str = Field(default="detected", pattern="^(detected|expected)$")
    """Truth trained on: ``detected`` photons per family (paper 002's fitted counts) or the
    ``expected`` rate."""
    mixture: MixtureRecipe = MixtureRecipe()
    """How the training pixels are drawn."""


FULL_RECIPE = TrainingRecipe()
"""The recipe of the shipped weights."""
QUICK_RECIPE = TrainingRecipe(n_train=4096, n_val=1024, epochs=4, warmup_epochs=2, batch_size=128)
"""``--quick``: seconds on a CPU; learns, but far from the shipped figures."""
SHIPPED_SETTINGS: dict[str, dict] = {"1dcnn+": {"linear_skip": True, "epochs": 24}}
"""How the shipped networks of an architecture were trained where it differs from
:data:`FULL_RECIPE` and a plain :class:`MapNetConfig`: what ``dwellwise train maps`` does unless
told otherwise, so that the default command reproduces the packaged weights."""
LONG_DWELL_S = (0.1, 2.0)
"""Live-time range (seconds, log-uniform) of the long-dwell networks' training pixels."""
LONG_DWELL_EVAL_S = 1.0
"""Live time of the held-out scenes scored after training a long-dwell network."""

CPU_THREADS = 1
"""torch threads while training on the CPU: batches of 256 short spectra are too small to share
between cores, and on a shared machine a second spinning thread slows every step many times."""
HELDOUT_SHAPE = (48, 48)
"""Size of the held-out scenes scored after training."""
HELDOUT_IMAGES = ("astronaut", "coffee", "rocket")
"""scikit-image paintings scored after training (the benchmark scores all six)."""
QUICK_HELDOUT = {"shape": (16, 16), "images": ("astronaut",), "n_mixtures": 6}


def long_dwell_recipe(recipe: TrainingRecipe) -> TrainingRecipe:
    """``recipe`` with its pixels counted at :data:`LONG_DWELL_S` live times."""
    mixture = recipe.mixture.model_copy(update={"live_time_s": LONG_DWELL_S})
    return recipe.model_copy(update={"mixture": mixture})


@dataclass
class TrainResult:
    """One trained network and how it got there."""

    arch: str
    """Architecture key."""
    network: torch.nn.Module
    """The network with the best validation loss, on the CPU, in eval mode."""
    config: MapNetConfig
    """Its configuration."""
    train_loss: list[float] = field(default_factory=list)
    """Mean adaptive L1 loss per epoch on the training pixels."""
    val_loss: list[float] = field(default_factory=list)
    """Adaptive L1 loss per epoch on the validation pixels."""
    best_epoch: int = 0
    """Epoch (1-based) whose weights were kept."""
    seconds: float = 0.0
    """Wall time of the optimisation, seconds."""
    heldout: dict[str, dict[str, ElementSummary]] = field(default_factory=dict)
    """Held-out summaries by truth (``expected``, ``detected``), then by family."""

    def predictor(self, device: str | torch.device = "cpu") -> MapNet:
        return MapNet(self.network, self.config, device=device)


def make_datasets(seed: int, recipe: TrainingRecipe) -> tuple[SpectraSet, SpectraSet]:
    """Training and validation pixels of a seed (independent streams)."""
    train_rng, val_rng = training_streams(seed)
    sim = PixelSimulator(recipe.mixture)
    return sim.simulate(recipe.n_train, train_rng), sim.simulate(recipe.n_val, val_rng)


def _targets(data: SpectraSet, recipe: TrainingRecipe) -> np.ndarray:
    rates = data.detected if recipe.target == "detected" else data.expected
    return (rates * data.live_time[:, None]).astype(np.float32)


def _loss_on(network, counts, y, device, batch: int = 4096) -> float:
    total, n = 0.0, counts.shape[0]
    network.eval()
    with torch.inference_mode():
        for s in range(0, n, batch):
            x = torch.as_tensor(counts[s : s + batch].astype(np.float32), device=device)
            t = torch.as_tensor(y[s : s + batch], device=device)
            u, total_counts = normalise(x)
            pred = network(u).clamp_min(0.0) * total_counts[:, None]
            total += float(adaptive_l1(pred, t)) * x.shape[0]
    return total / n


def fit_network(
    arch: str,
    train: SpectraSet,
    val: SpectraSet,
    *,
    seed: int,
    recipe: TrainingRecipe,
    device: str | torch.device = "auto",
    config: MapNetConfig | None = None,
    log: Log = print,
    cpu_threads: int = CPU_THREADS,
) -> TrainResult:
    """Train one architecture on simulated pixels; keep the best validation epoch."""
    previous = torch.get_num_threads()
    torch.set_num_threads(cpu_threads)
    try:
        return _fit(
            arch, train, val, seed=seed, recipe=recipe, device=device, config=config, log=log
        )
    finally:
        torch.set_num_threads(previous)


def _fit(arch, train, val, *, seed, recipe, device, config, log) -> TrainResult:
    dev = resolve_device(device)
    config = config or MapNetConfig(arch=arch, names=train.names)
    if tuple(config.names) != tuple(train.names) or config.axis != train.axis:
        raise ValueError("the network's outputs and axis must match the training data")
    torch.manual_seed(seed)
    network = build_network(config)
    y_train, y_val = _targets(train, recipe), _targets(val, recipe)
    m = recipe.standardise_spectra
    u_sample, n_sample = normalise(torch.from_numpy(train.counts[:m].astype(np.float32)))
    shares = torch.from_numpy(y_train[:m]) / n_sample.clamp_min(1.0)[:, None]
    fit_standardisation(network, u_sample, shares)
    share_scale = network.output_scale.clone().to(dev)
    network = network.to(dev)
    opt = torch.optim.Adam(network.parameters(), lr=recipe.learning_rate)
    steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    ratio = recipe.final_learning_rate / recipe.learning_rate
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
        ),
    )
    on_gpu = dev.type == "cuda"
    counts_all = torch.as_tensor(train.counts.astype(np.float32), device=dev) if on_gpu else None
    y_all = torch.as_tensor(y_train, device=dev) if on_gpu else None
    order_gen = np.random.default_rng([seed, 0x6F7264])
    result = TrainResult(arch=arch, network=network, config=config)
    best, best_state = math.inf, None
    started = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        network.train()
        order = order_gen.permutation(len(train))
        running = 0.0
        for s in range(0, len(train), recipe.batch_size):
            idx = order[s : s + recipe.batch_size]
            if on_gpu:
                it = torch.as_tensor(idx, device=dev)
                x, t = counts_all[it], y_all[it]
            else:
                x = torch.from_numpy(train.counts[idx].astype(np.float32))
                t = torch.from_numpy(y_train[idx])
            u, total_counts = normalise(x)
            out = network(u)
            if epoch <= recipe.warmup_epochs:
                true_shares = t / total_counts.clamp_min(1.0)[:, None]
                loss = (((out - true_shares) / share_scale) ** 2).mean()
            else:
                loss = adaptive_l1(clip_output(out) * total_counts[:, None], t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach()) * idx.size
        result.train_loss.append(running / len(train))
        result.val_loss.append(_loss_on(network, val.counts, y_val, dev))
        if result.val_loss[-1] < best:
            best, result.best_epoch = result.val_loss[-1], epoch
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        kind = "MSE of shares" if epoch <= recipe.warmup_epochs else "aL1"
        log(
            f"{LABELS[arch]:>6} epoch {epoch:3d}/{recipe.epochs}: train {kind} "
            f"{result.train_loss[-1]:.4f}, validation aL1 {result.val_loss[-1]:.4f} "
            f"({time.perf_counter() - started:.0f} s)"
        )
    result.seconds = time.perf_counter() - started
    network.load_state_dict(best_state)
    result.network = network.cpu().eval()
    return result


PERFECT_COUNTING = "perfect counting"
"""Label of the ceiling row of :func:`heldout_figures`: the detected photons themselves."""


def heldout_figures(
    predictors: Sequence,
    scenes,
    names: Sequence[str],
    log: Log | None = None,
    perfect_counting: bool = False,
) -> dict[str, dict[str, dict[str, ElementSummary]]]:
    """Score each predictor on each held-out scene against both truths; returns
    ``{label: {"expected"|"detected": {family: ElementSummary}}}`` averaged over the scenes
    where each family is present (:meth:`EvalScene.present`). ``perfect_counting`` adds a row
    that predicts the detected rate itself: against the expected truth it is the counting-noise
    ceiling of an unbiased per-pixel method."""
    labels = [p.label for p in predictors] + ([PERFECT_COUNTING] if perfect_counting else [])
    per: dict[str, dict[str, list]] = {lab: {"expected": [], "detected": []} for lab in labels}
    for scene in scenes:
        present = scene.present()
        idx = [scene.names.index(n) for n in names]
        live = scene.live_time.reshape(scene.shape)
        for p in [*predictors, *([None] if perfect_counting else [])]:
            label = PERFECT_COUNTING if p is None else p.label
            pred = scene.detected[idx] if p is None else predict_scene(p, scene)[idx]
            for kind in ("expected", "detected"):
                truth = getattr(scene, kind)[idx]
                per[label][kind].append((present[idx], score_maps(pred, truth, live, names)))
        if log is not None:
            log(f"  scored {scene.name} ({scene.style}, {scene.shape[0]}x{scene.shape[1]})")
    return {
        label: {kind: summarise(rows, names) for kind, rows in kinds.items()}
        for label, kinds in per.items()
    }


def _figures_json(summary: dict[str, ElementSummary]) -> dict:
    ssim, missing = mean_scored(summary, TARGETS, "ssim")
    return {
        "mean_ssim_targets": round(ssim, 4),
        "mean_pearson_targets": round(mean_scored(summary, TARGETS, "pearson")[0], 4),
        "targets_never_present": missing,
        "per_element": {
            n: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.model_dump().items()}
            for n, s in summary.items()
        },
    }


def train_maps(
    arch: str,
    *,
    seed: int = 0,
    epochs: int | None = None,
    device: str | torch.device = "auto",
    quick: bool = False,
    recipe: TrainingRecipe | None = None,
    long_dwell: bool = False,
    linear_skip: bool | None = None,
    out: Path | str | None = None,
    evaluate: bool = True,
    log: Log = print,
) -> list[TrainResult]:
    """Train ``arch`` (``fcn``, ``fcn+``, ``1dcnn``, ``1dcnn+`` or ``all``, on the same data),
    score the held-out scenes, and write the weights when ``out`` is given (for ``all``: one
    file per architecture beside ``out``, named after it; ``"packaged"``: the package's
    ``weights/maps_<arch>.pt``). ``long_dwell`` trains the long-dwell networks instead
    (:data:`LONG_DWELL_S`, scored at :data:`LONG_DWELL_EVAL_S`; packaged as
    ``maps_<arch>_long.pt``, which :func:`load_map_model` attaches to ``maps_<arch>.pt``).
    ``linear_skip`` gives the networks a :class:`~dwellwise.models.element_nets.LinearSkip`.
    ``linear_skip`` and ``epochs`` left at None take :data:`SHIPPED_SETTINGS` (the epochs only
    for the full recipe)."""
    archs = list(ARCHITECTURES) if arch == "all" else [arch]
    for a in archs:
        weights_name(a)  # validates the key
    shipped_recipe = recipe is None and not quick
    recipe = recipe or (QUICK_RECIPE if quick else FULL_RECIPE)
    if long_dwell:
        recipe = long_dwell_recipe(recipe)
    if epochs is not None:
        recipe = recipe.model_copy(update={"epochs": int(epochs)})
    settings = {
        a: arch_settings(a, recipe, linear_skip, shipped_recipe and epochs is None) for a in archs
    }
    t0 = time.perf_counter()
    train, val = make_datasets(seed, recipe)
    log(
        f"simulated {len(train)} training and {len(val)} validation spectra "
        f"({time.perf_counter() - t0:.1f} s, seed {seed})"
    )
    results = [
        fit_network(
            a,
            train,
            val,
            seed=seed,
            recipe=settings[a][0],
            device=device,
            config=MapNetConfig(arch=a, names=train.names, linear_skip=settings[a][1]),
            log=log,
        )
        for a in archs
    ]
    del train, val
    if evaluate:
        heldout = QUICK_HELDOUT if quick else {"shape": HELDOUT_SHAPE, "images": HELDOUT_IMAGES}
        if long_dwell:
            heldout = {**heldout, "live_time_s": LONG_DWELL_EVAL_S}
        log(f"held-out scenes: {heldout}")
        predictors = [r.predictor("cpu") for r in results]
        figures = heldout_figures(predictors, heldout_scenes(**heldout), TARGETS, log=log)
        for r, p in zip(results, predictors, strict=True):
            r.heldout = figures[p.label]
            for kind, summary in r.heldout.items():
                ssim, missing = mean_scored(summary, TARGETS, "ssim")
                pearson = mean_scored(summary, TARGETS, "pearson")[0]
                absent = f" ({', '.join(missing)} never present)" if missing else ""
                log(
                    f"{p.label:>6} held-out vs {kind} truth: mean SSIM {ssim:.4f}, mean "
                    f"Pearson {pearson:.4f} over the targets present{absent}"
                )
    written = results
    if evaluate and long_dwell and out == "packaged":
        written = _long_dwell_that_helps(results, heldout, log)
    if out is not None:
        for r in written:
            if out == "packaged":
                path = shipped_weights(r.arch, long_dwell)
            else:
                path = Path(out) if len(written) == 1 else _sibling(Path(out), r.arch)
            arch_recipe, skip = settings[r.arch]
            info = {
                "command": f"dwellwise train maps --arch {r.arch} --seed {seed}"
                + (" --long-dwell" if long_dwell else "")
                + (" --linear-skip" if skip else " --no-linear-skip")
                + (" --quick" if quick else "")
                + f" --epochs {arch_recipe.epochs}",
                "seed": seed,
                "recipe": arch_recipe.model_dump(mode="json"),
                "normalisation": (
                    "input u = counts * E / N (N = counts in the model axis window); output = "
                    "share of the N counts per family; rate = share * N / live_time, clipped >= 0"
                ),
                "truth": "detected photons of each family / live time (counts/s)",
                "train_seconds": round(r.seconds, 1),
                "device": str(resolve_device(device)),
                "cpu_threads": CPU_THREADS,
                "best_epoch": r.best_epoch,
                "train_loss": [round(v, 5) for v in r.train_loss],
                "val_loss": [round(v, 5) for v in r.val_loss],
                "heldout": {kind: _figures_json(s) for kind, s in r.heldout.items()},
            }
            json_path = save_map_model(path, r.network, r.config, info)
            log(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB) and {json_path.name}")
    return results


def arch_settings(
    arch: str, recipe: TrainingRecipe, linear_skip: bool | None, shipped_epochs: bool
) -> tuple[TrainingRecipe, bool]:
    """The recipe and linear skip of one architecture: ``linear_skip`` unless None, and the
    epochs of :data:`SHIPPED_SETTINGS` when ``shipped_epochs``."""
    shipped = SHIPPED_SETTINGS.get(arch, {})
    skip = shipped.get("linear_skip", False) if linear_skip is None else linear_skip
    if shipped_epochs and "epochs" in shipped:
        recipe = recipe.model_copy(update={"epochs": shipped["epochs"]})
    return recipe, skip


def _long_dwell_that_helps(results: list[TrainResult], heldout: dict, log: Log) -> list[TrainResult]:
    """The long-dwell networks that score a higher mean SSIM (detected truth) on the held-out
    scenes at long dwell than the packaged network of their architecture alone; the others are
    not written into the package (``analyze`` would use them)."""
    keep, short = [], []
    for r in results:
        try:
            model = load_map_model(shipped_weights(r.arch), device="cpu")
        except (FileNotFoundError, ValueError):
            keep.append(r)  # nothing to compare with
            continue
        model.long_dwell = None
        model.label = f"{model.label} (5-100 ms)"
        short.append((r, model))
    if short:
        figures = heldout_figures([m for _, m in short], heldout_scenes(**heldout), TARGETS)
        for r, m in short:
            mine = mean_scored(r.heldout["detected"], TARGETS, "ssim")[0]
            theirs = mean_scored(figures[m.label]["detected"], TARGETS, "ssim")[0]
            if mine > theirs:
                keep.append(r)
            else:
                log(
                    f"{r.config.label} long-dwell network not written: mean SSIM {mine:.4f} at "
                    f"long dwell, below the {theirs:.4f} of {shipped_weights(r.arch).name} alone"
                )
    return keep


def _sibling(out: Path, arch: str) -> Path:
    suffix = out.suffix or ".pt"
    return out.with_name(f"{out.stem}_{arch.replace('+', '_plus')}{suffix}")


def train_from_cli(args: argparse.Namespace) -> int:
    """``dwellwise train maps``: ``--out`` defaults to the packaged weights of each
    architecture (``models/weights/maps_<arch>.pt``)."""
    try:
        resolve_device(args.device)
    except ValueError as exc:
        from dwellwise.cliargs import UsageError

        raise UsageError(str(exc)) from None
    train_maps(
        args.arch,
        seed=args.seed,
        epochs=args.epochs,
        device=args.device,
        quick=args.quick,
        long_dwell=args.long_dwell,
        linear_skip=args.linear_skip,
        out=args.out if args.out is not None else "packaged",
    )
    return 0
