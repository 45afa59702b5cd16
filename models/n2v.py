"""Self-supervised blind-spot network (Noise2Void family) estimating count rates from one pass.

Model. First-pass counts ``X_ci ~ Poisson(ψ_ci t0_i)`` (ψ counts/s, t0 s). The network predicts
``ψ̂_ci`` from the *neighbours* of pixel i only: the centre is excluded from its receptive field by
construction (no masking at inference is needed, every pixel is a training target):

* fixed features: Gaussian blind-spot rates ``Σ_{j≠i} K_ij X_j / Σ_{j≠i} K_ij t0_j`` at several
  widths σ (:func:`dwellwise.models.blindspot.blindspot_rate`, centre weight zero, zero padding);
* learned features: 5×5 convolutions at dilations 1 and 2 whose centre tap is masked to zero, on
  the standardised Anscombe transform ``A(X) = 2 sqrt(X + 3/8)`` of the counts (per channel) and a
  ones channel (zero padding, so the net knows where the image ends; reflect padding would fold
  the centre pixel back into the window near the borders);
* a per-pixel MLP (1×1 convolutions) maps them to ``log(ψ̂_ci / ψ̄_c)``, ψ̄_c the channel's mean rate.

No output depends on its own pixel's counts through the forward pass (tested). **Cross-fitting**
closes the other path, through the weights: a network trained with ``X_i`` as a target has fitted
a little of ``X_i``'s noise into its weights, so its ``ψ̂_i`` still leans towards ``X_i``, and a
dwell chosen from it biases the pooled estimate ``(X0 + X1)/(t0 + t)`` low. The pixels are split
into ``folds`` random folds (the same for every channel); network k answers only for fold k,
keeps the weights of the step with the lowest loss on fold k+1 (early stopping) and learns from
the other folds, so no count of fold k is a target or a stopping criterion of the network that
estimates it (it is only an input to its neighbours' predictions). Measured (bias of the pooled
estimate, 12 first passes of a 64×64 map at 0.13 counts per pixel, 2+8 ms; efficiency: mean over
the 25 development maps at 2+8 ms):

=====================================================  ===============  ==========
scheme                                                 bias             efficiency
=====================================================  ===============  ==========
one network, 20 % held out for early stopping          −0.86 ± 0.22 %   0.752
2 folds, early stopping on the fold answered for       −0.39 ± 0.13 %   0.736
3 folds (answer k, stop on k+1, learn from the third)  −0.17 ± 0.15 %   0.724
=====================================================  ===============  ==========

The efficiency the leaky schemes show is partly the leak itself (using a pixel's own count
always looks better until the bias is counted). 3 folds is the default; it costs three trainings.

Loss. Poisson negative log-likelihood in the count domain, ``λ − X log λ`` with ``λ = t0 ψ̂``, on
the blind-spot predictions. Its minimiser is the conditional mean ``E[X_i | neighbours] / t0_i``,
i.e. ``E[ψ_i | neighbours]`` — unbiased with no inverse transform, and exactly the quantity the
water-filling needs: the expected second-pass error ``Σ_i E[ψ_i | data] / (t0_i + t_i)`` is
minimised by ``t0_i + t_i ∝ sqrt(E[ψ_i | data])``. (An MSE in the Anscombe domain would estimate
``E[A(X)]`` and need the Makitalo-Foi inverse, which is exact only for a known Poisson λ, not for
the mixture a neighbourhood predicts; Anscombe is kept where it helps, as input normalisation.)

Regularisation. Early stopping as above (with ``folds = 1``, on a random 20 % held out of the
loss). Random rotations by
90° and flips of the whole map at every step. The channels of a ``(C, H, W)`` stack share one network (each normalised by its own
mean rate), so one training serves all elements.

Time. Training runs on CUDA when available, else on the CPU with :data:`CPU_THREADS` thread, for
``steps`` Adam steps or until ``deadline`` seconds (minus the inference time) have passed.
:data:`last_training_report` records device, steps and seconds; :func:`n2v_fits_deadline` tells
``auto`` whether a useful training fits a deadline on this machine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from dwellwise.models.blindspot import blind_sum
from dwellwise.models.transforms import anscombe
from torch import nn
from torch.nn import functional as F

SIGMAS: tuple[float, ...] = (0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
"""Widths (px) of the fixed Gaussian blind-spot features."""
DEFAULT_DEADLINE = 20.0
"""Default training deadline, seconds."""
MIN_USEFUL_STEPS = 60
"""Training shorter than this many steps is not worth it (``auto`` then uses the fallback)."""
MIN_DEADLINE_S = 1.0
"""``auto`` does not try the network with a shorter deadline: the first use of torch and the
measurement of the step time (:func:`estimate_training_time`) would themselves eat it."""
CPU_THREADS = 1
"""Torch threads on the CPU: more threads collapse when other processes share the cores, and a
64×64 map gains nothing from them."""
_LOG_FLOOR = 1e-3
"""Floor of the normalised smooth rates before the log, so empty regions stay finite."""


@dataclass(frozen=True)
class N2VConfig:
    """Network and training settings."""

    width: int = 8
    """Learned masked filters per dilation."""
    dilations: tuple[int, ...] = (1, 2)
    """Dilations of the 5×5 masked convolutions (receptive field up to 9×9 px)."""
    hidden: int = 32
    """Width of the per-pixel MLP."""
    steps: int = 300
    """Maximum number of Adam steps (one step = the whole map, one random rotation/flip)."""
    lr: float = 1e-2
    """Adam learning rate."""
    folds: int = 3
    """Cross-fitting: ``folds`` networks; network k answers for random fold k, early-stops on
    fold k+1 and learns from the rest (with 2 folds it learns from the other fold and early-stops
    on its own, which leaks a little; 1 trains one network for all pixels, with ``holdout``)."""
    holdout: float = 0.2
    """Share of pixels held out of the loss for early stopping when ``folds == 1``."""
    sigmas: tuple[float, ...] = SIGMAS
    """Widths (px) of the fixed Gaussian blind-spot features."""


@dataclass(frozen=True)
class TrainingReport:
    """What one training did."""

    device: str
    """Torch device that trained."""
    steps: int
    """Adam steps taken."""
    best_step: int
    """Step whose weights were kept (the earliest over the cross-fitted networks)."""
    seconds: float
    """Wall time of training and inference, seconds."""
    stopped_by_deadline: bool
    """Whether the deadline, not ``steps``, ended the training."""
    train_loss: float
    """Poisson NLL per pixel (up to a data constant) on the learning pixels at the last step,
    averaged over the networks."""
    holdout_loss: float
    """Best Poisson NLL per judged (early-stopping) pixel, averaged over the networks."""


last_training_report: TrainingReport | None = None
"""Report of the most recent :func:`estimate_rates_n2v` call in this process."""


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class MaskedConv2d(nn.Conv2d):
    """k×k convolution whose centre tap is fixed at zero: the output never sees its own pixel."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int) -> None:
        super().__init__(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        mask = torch.ones(1, 1, kernel, kernel)
        mask[..., kernel // 2, kernel // 2] = 0.0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding,
                        dilation=self.dilation)


class BlindSpotNet(nn.Module):
    """Blind-spot rate network: masked convolutions + fixed blind-spot features → per-pixel MLP."""

    def __init__(self, n_smooth: int, config: N2VConfig) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            MaskedConv2d(2, config.width, 5, d) for d in config.dilations
        )
        n_in = config.width * len(config.dilations) + n_smooth
        self.mlp = nn.Sequential(
            nn.Conv2d(n_in, config.hidden, 1), nn.SiLU(),
            nn.Conv2d(config.hidden, config.hidden, 1), nn.SiLU(),
            nn.Conv2d(config.hidden, 1, 1),
        )
        nn.init.zeros_(self.mlp[-1].weight)  # untrained: ψ̂ = the channel's mean rate
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, ans: torch.Tensor, log_smooth: torch.Tensor) -> torch.Tensor:
        """``ans`` (B, 1, H, W) standardised Anscombe counts, ``log_smooth`` (B, S, H, W) log of
        normalised blind-spot rates; returns (B, 1, H, W) log of the rate over the mean rate."""
        inp = torch.cat([ans, torch.ones_like(ans)], dim=1)
        feats = [F.silu(conv(inp)) for conv in self.convs]
        return self.mlp(torch.cat([*feats, log_smooth], dim=1))


def _features(
    counts: np.ndarray, t0: np.ndarray, sigmas: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised Anscombe (C,1,H,W), log normalised blind-spot rates (C,S,H,W), mean rates (C,)
    in counts/s."""
    n_chan = counts.shape[0]
    mean_rate = np.maximum(counts.sum(axis=(1, 2)) / t0.sum(), 1e-9)
    t0_blind = [np.maximum(blind_sum(t0, s), 1e-300) for s in sigmas]
    smooth = np.empty((n_chan, len(sigmas)) + counts.shape[1:])
    for c in range(n_chan):
        for k, s in enumerate(sigmas):
            rate = np.maximum(blind_sum(counts[c], s), 0.0) / t0_blind[k]
            smooth[c, k] = np.log(rate / mean_rate[c] + _LOG_FLOOR)
    ans = anscombe(counts)
    mu = ans.mean(axis=(1, 2), keepdims=True)
    sd = ans.std(axis=(1, 2), keepdims=True) + 1e-6
    return ((ans - mu) / sd)[:, None], smooth, mean_rate


def _dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Rotate by ``k``·90° in the image plane, then optionally flip left-right."""
    x = torch.rot90(x, k, dims=(2, 3))
    return x.flip(3) if flip else x


def estimate_rates_n2v(
    counts: np.ndarray,
    t0: np.ndarray | float,
    *,
    seed: int | None = 0,
    deadline: float = DEFAULT_DEADLINE,
    config: N2VConfig | None = None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Blind-spot rate estimates ψ̂ ``(C, H, W)`` counts/s from first-pass counts ``(C, H, W)``.

    ``t0`` (seconds) is a scalar or ``(H, W)``. Trains a :class:`BlindSpotNet` on these counts
    only, for at most ``config.steps`` steps and at most ``deadline`` seconds in all; the result is
    reproducible for a given ``seed`` on one device. Sets :data:`last_training_report`.
    """
    global last_training_report
    start = time.perf_counter()
    config = config or N2VConfig()
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim == 2:
        counts = counts[None]
    t0_map = np.broadcast_to(np.asarray(t0, dtype=np.float64), counts.shape[1:]).copy()
    dev = torch.device(device) if device is not None else default_device()
    rng = np.random.default_rng(seed)

    ans_np, smooth_np, mean_rate = _features(counts, t0_map, config.sigmas)
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=dev)  # noqa: E731
    ans, smooth = as_t(ans_np), as_t(smooth_np)
    x = as_t(counts[:, None])
    lam_scale = as_t(mean_rate[:, None, None, None] * t0_map[None, None])  # counts at ψ = ψ̄
    if config.folds > 2:  # net k answers for fold k, early-stops on fold k+1, learns from the rest
        K = config.folds
        fold = rng.integers(K, size=(1, 1) + counts.shape[1:])
        answer = [as_t(fold == k) for k in range(K)]
        judge = [as_t(fold == (k + 1) % K) for k in range(K)]
        learn = [1.0 - a - j for a, j in zip(answer, judge, strict=True)]
    elif config.folds == 2:  # net k learns from the pixels outside fold k and answers for fold k
        fold = rng.integers(config.folds, size=(1, 1) + counts.shape[1:])
        answer = [as_t(fold == k) for k in range(config.folds)]
        learn = [1.0 - a for a in answer]
        judge = answer  # early stopping on the fold it answers for (one step chosen per net)
    else:  # one net answers for every pixel; a random share is held out of its loss
        held = as_t(rng.random((1, 1) + counts.shape[1:]) < config.holdout)
        answer, learn, judge = [torch.ones_like(held)], [1.0 - held], [held]
    n_learn = [m.sum().clamp_min(1.0) * len(counts) for m in learn]
    n_judge = [m.sum().clamp_min(1.0) * len(counts) for m in judge]

    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(CPU_THREADS)
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(int(rng.integers(2**62)))
            nets = [BlindSpotNet(len(config.sigmas), config).to(dev) for _ in learn]
        params = [p for net in nets for p in net.parameters()]
        opt = torch.optim.Adam(params, lr=config.lr)
        snapshot = lambda net: {k: v.detach().clone() for k, v in net.state_dict().items()}  # noqa: E731
        best = [(float("inf"), snapshot(net), -1) for net in nets]
        budget = max(deadline - 1.5 * (time.perf_counter() - start), 0.0)  # keep time to infer
        step, train_loss, by_deadline = 0, float("nan"), False
        for step in range(1, config.steps + 1):
            if time.perf_counter() - start > budget:
                by_deadline, step = True, step - 1
                break
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            a_, s_, l_, x_ = (_dihedral(v, k, flip) for v in (ans, smooth, lam_scale, x))
            loss = torch.zeros((), device=dev)
            for n, net in enumerate(nets):
                log_lam = net(a_, s_) + torch.log(l_)
                nll = torch.exp(log_lam) - x_ * log_lam
                loss = loss + (nll * _dihedral(learn[n], k, flip)).sum() / n_learn[n]
                judged = float((nll.detach() * _dihedral(judge[n], k, flip)).sum() / n_judge[n])
                if judged < best[n][0]:  # these weights (before this step's update) gave it
                    best[n] = (judged, snapshot(net), step - 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            train_loss = float(loss.detach()) / len(nets)
        rel = torch.zeros_like(x[:, 0])
        with torch.no_grad():
            for n, net in enumerate(nets):
                net.load_state_dict(best[n][1])
                rel += torch.exp(net(ans, smooth))[:, 0] * answer[n][:, 0]
        rel = rel.double().cpu().numpy()
    finally:
        torch.set_num_threads(threads)
    last_training_report = TrainingReport(
        device=str(dev), steps=step, best_step=min(b[2] for b in best),
        seconds=time.perf_counter() - start, stopped_by_deadline=by_deadline,
        train_loss=train_loss, holdout_loss=float(np.mean([b[0] for b in best])),
    )
    return rel * mean_rate[:, None, None]


_STEP_TIME: dict[tuple[tuple[int, int, int], str], float] = {}


def estimate_training_time(
    shape: tuple[int, ...], device: torch.device | str | None = None, steps: int | None = None
) -> float:
    """Seconds a training of ``steps`` steps (default: :class:`N2VConfig`'s) takes on a ``shape``
    map (``(H, W)`` or ``(C, H, W)``) on this machine, measured once per shape by a short run."""
    shape3 = tuple(shape) if len(shape) == 3 else (1, *shape)
    dev = torch.device(device) if device is not None else default_device()
    key = (shape3, str(dev))
    if key not in _STEP_TIME:
        rng = np.random.default_rng(0)
        counts = rng.poisson(3.0, size=shape3).astype(np.float64)
        cfg = N2VConfig(steps=4)
        t = time.perf_counter()
        estimate_rates_n2v(counts, 1.0, seed=0, config=cfg, device=dev, deadline=60.0)
        total = time.perf_counter() - t
        _STEP_TIME[key] = total / 4  # features + inference counted as a few steps: conservative
    n = N2VConfig().steps if steps is None else steps
    return _STEP_TIME[key] * (n + 4)


def n2v_fits_deadline(shape: tuple[int, ...], deadline: float | None) -> bool:
    """Whether at least :data:`MIN_USEFUL_STEPS` training steps fit in ``deadline`` seconds
    (``None`` means :data:`DEFAULT_DEADLINE`). Training beyond that is cut at the deadline."""
    deadline = DEFAULT_DEADLINE if deadline is None else float(deadline)
    if deadline < MIN_DEADLINE_S:
        return False
    return estimate_training_time(shape, steps=MIN_USEFUL_STEPS) <= deadline
