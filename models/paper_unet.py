"""Reproduction of paper 000 (Chopp et al., ICIP 2025): a self-supervised U-Net that maps the
first-pass rates to second-pass dwell times.

Pipeline, as in the paper:

* rates ``Λ = X / t0`` (counts/s) and their Anscombe transform ``Ans(Λ) = 2 sqrt(Λ + 3/8)``
  (Eq. 3) as the network input. The paper applies it to *rates*; dwellwise knows the transform
  stabilises the variance of *counts* (``Ans(X)``), but the reproduction keeps the paper's choice;
* a 4-level U-Net (encoder: two 3×3 conv + BN + ReLU per level, 2×2 max pool; decoder: 2×2
  transposed conv, skip concatenation, two 3×3 conv), 1×1 output ``t̃``;
* the mean-adjustment (MA) layer (Eq. 4): ``MA(t̃)_i = t1 · S⁺(t̃_i) / ((1/P) Σ_j S⁺(t̃_j))``,
  S⁺ the softplus, over the P = N·K selected pixels of a batch (over all pixels at inference);
* training batches of N = 1024 random 16×16 crops, each randomly rotated by k·90° and flipped,
  with K = 64 random target pixels per crop; uniform pixel selection (UPS): the target rate ψ̃_i of
  a selected pixel is a uniformly random pixel of its 5×5 window *including itself*, clipped to the
  crop (so never outside the image);
* the simulated-sampling loss (Eq. 5-6): ``λ̃_i = (λ_i t0 + ψ̃_i t̃_i)/(t0 + t̃_i)``,
  ``L = mean_i (λ̃_i − ψ̃_i)²`` in (counts/s)²;
* inference with K = 1 at the centre (index 8) of a 16×16 crop around every pixel of the
  reflect-padded map (:func:`raw_crop_centres`); :func:`raw_full_image` is the one-pass
  equivalent for a network whose receptive field fits inside the crop (tested).

Paper choices known to be suboptimal and kept: Anscombe on rates instead of counts; no blind
spot (the net sees the target pixel, so the loss reduces to ``t0²(λ_i − ψ̃_i)²/(t0 + t_i)²`` and a
perfect net converges to ``t0 + t_i ∝ a_i^(1/3)``, a_i a local mean squared difference, not the
optimal ``sqrt(ψ_i)``); UPS including the pixel itself; the dwell chosen from the pixel's own
noisy counts, which biases the pooled estimate low; the MA layer's positive floor instead of
allowing ``t_i = 0``.

Unspecified by the paper and chosen here: batch normalisation and base width 8 (channels 8-128),
Adam at lr 1e-3, replicate padding of inputs whose size is not a multiple of 16, and a default of
60 steps so that a 128×128 map trains on a CPU within tens of seconds (``steps``/``deadline``
configurable). Several element maps (C > 1): the paper optimises one map; here the net is trained
on the weighted rate sum ``Σ_c w_c Λ_c`` (and its weighted counts for Eq. 5), the same score the
water-filling policies use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from dwellwise.models.transforms import anscombe
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class PaperUNetConfig:
    """Paper settings (N, crop, K, UPS window, depth) and the unspecified ones (width, lr, steps)."""

    n_crops: int = 1024
    crop: int = 16
    k_targets: int = 64
    ups_window: int = 5
    depth: int = 4
    base_width: int = 8
    lr: float = 1e-3
    steps: int = 60
    infer_batch: int = 1024


@dataclass(frozen=True)
class PaperTrainingReport:
    device: str
    steps: int
    seconds: float
    losses: tuple[float, ...]
    """Eq. 6 loss per step, (counts/s)²."""
    stopped_by_deadline: bool


last_training_report: PaperTrainingReport | None = None
"""Report of the most recent :func:`train_paper_unet` call."""


def ma_layer(raw: torch.Tensor, t1: float) -> torch.Tensor:
    """Eq. 4: ``t1 · softplus(raw) / mean(softplus(raw))`` over all entries; mean is exactly t1."""
    sp = F.softplus(raw)
    return t1 * sp / sp.mean()


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``depth`` encoder/decoder levels; 1 input channel, 1 raw output channel."""

    def __init__(self, depth: int = 4, base: int = 8) -> None:
        super().__init__()
        widths = [base * 2**k for k in range(depth + 1)]
        self.depth = depth
        self.enc = nn.ModuleList([_block(1, widths[0])] +
                                 [_block(widths[k - 1], widths[k]) for k in range(1, depth + 1)])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2)
                                for k in range(depth))
        self.dec = nn.ModuleList(_block(2 * widths[k], widths[k]) for k in range(depth))
        self.out = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = []
        for k, enc in enumerate(self.enc):
            x = enc(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for k in reversed(range(self.depth)):
            x = self.dec[k](torch.cat([self.up[k](x), skips.pop()], dim=1))
        return self.out(x)[..., :h, :w]


def _dihedral(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Per-sample rotation by (code % 4)·90° and left-right flip when code ≥ 4; x is (N, C, S, S)."""
    out = torch.empty_like(x)
    for c in range(8):
        sel = code == c
        if sel.any():
            y = torch.rot90(x[sel], c % 4, dims=(2, 3))
            out[sel] = y.flip(3) if c >= 4 else y
    return out


def ups_targets(
    rows: torch.Tensor, cols: torch.Tensor, size: int, window: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform pixel selection: for each (row, col) in a ``size``×``size`` crop, a uniformly random
    pixel of its ``window``×``window`` neighbourhood, the pixel itself included, restricted to the
    crop (so never outside the image)."""
    r = window // 2

    def pick(p: torch.Tensor) -> torch.Tensor:
        lo = (p - r).clamp(min=0)
        hi = (p + r).clamp(max=size - 1)
        u = torch.rand(p.shape, generator=gen, device=p.device)
        return lo + (u * (hi - lo + 1).to(u.dtype)).long().clamp(max=hi - lo)

    return pick(rows), pick(cols)


def _prepare(counts: np.ndarray, t0: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted counts Σ w_c X_c, their rates Λ = (Σ w_c X_c)/t0 and Ans(Λ), all (H, W)."""
    xw = np.tensordot(weights, counts, axes=1)
    lam = xw / t0
    return xw, lam, anscombe(lam)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_paper_unet(
    counts: np.ndarray,
    t0: np.ndarray | float,
    t1: float,
    *,
    weights: np.ndarray | None = None,
    config: PaperUNetConfig | None = None,
    seed: int | None = 0,
    deadline: float | None = None,
    device: torch.device | str | None = None,
) -> UNet:
    """Train the paper's U-Net on first-pass ``counts`` ``(C, H, W)`` (or ``(H, W)``), t0 (s)
    scalar or ``(H, W)``, mean second-pass dwell ``t1`` (s). Stops after ``config.steps`` steps
    or when the next step would pass ``deadline`` seconds. Sets :data:`last_training_report`."""
    global last_training_report
    start = time.perf_counter()
    cfg = config or PaperUNetConfig()
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[None] if counts.ndim == 2 else counts
    w = np.ones(counts.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    t0_map = np.broadcast_to(np.asarray(t0, dtype=np.float64), counts.shape[1:])
    dev = torch.device(device) if device is not None else _default_device()
    _, lam_np, ans_np = _prepare(counts, t0_map, w)
    h, wd = lam_np.shape
    s = min(cfg.crop, h, wd)
    k_t = min(cfg.k_targets, s * s)
    gen = torch.Generator(device=dev).manual_seed(0 if seed is None else int(seed))
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(0 if seed is None else int(seed))
        net = UNet(cfg.depth, cfg.base_width).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    # Stack the maps as channels so one crop index cuts input, rates and t0 alike.
    maps = torch.as_tensor(np.stack([ans_np, lam_np, t0_map]), dtype=torch.float32, device=dev)
    losses: list[float] = []
    by_deadline = False
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(min(threads, 2))
    try:
        net.train()
        for _ in range(cfg.steps):
            elapsed = time.perf_counter() - start
            if deadline is not None and losses and elapsed * (1 + 1 / len(losses)) > deadline:
                by_deadline = True
                break
            n = cfg.n_crops
            y0 = torch.randint(0, h - s + 1, (n,), generator=gen, device=dev)
            x0 = torch.randint(0, wd - s + 1, (n,), generator=gen, device=dev)
            ar = torch.arange(s, device=dev)
            iy = (y0[:, None] + ar)[:, :, None]
            ix = (x0[:, None] + ar)[:, None, :]
            crops = maps[:, iy, ix].permute(1, 0, 2, 3)  # (N, 3, s, s)
            crops = _dihedral(crops, torch.randint(0, 8, (n,), generator=gen, device=dev))
            sel = torch.rand(n, s * s, generator=gen, device=dev).argsort(dim=1)[:, :k_t]
            r, c = sel // s, sel % s
            tr, tc = ups_targets(r, c, s, cfg.ups_window, gen)
            raw = net(crops[:, :1])[:, 0]  # (N, s, s)
            bidx = torch.arange(n, device=dev)[:, None]
            t_sel = ma_layer(raw[bidx, r, c], t1)  # (N, K), MA over P = N·K
            lam_i = crops[:, 1][bidx, r, c]
            t0_i = crops[:, 2][bidx, r, c]
            psi = crops[:, 1][bidx, tr, tc]
            lam_new = (lam_i * t0_i + psi * t_sel) / (t0_i + t_sel)  # Eq. 5
            loss = torch.mean((lam_new - psi) ** 2)  # Eq. 6
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        torch.set_num_threads(threads)
    net.eval()
    last_training_report = PaperTrainingReport(
        device=str(dev), steps=len(losses), seconds=time.perf_counter() - start,
        losses=tuple(losses), stopped_by_deadline=by_deadline,
    )
    return net


def _padded_input(ans: np.ndarray, s: int, dev: torch.device) -> torch.Tensor:
    """Ans(Λ) reflect-padded so every pixel is the centre (index s//2) of an s×s crop."""
    a, b = s // 2, s - s // 2 - 1
    img = torch.as_tensor(ans, dtype=torch.float32, device=dev)[None, None]
    mode = "reflect" if min(ans.shape) > max(a, b) else "replicate"
    return F.pad(img, (a, b, a, b), mode=mode)


@torch.no_grad()
def raw_crop_centres(net: UNet, ans: np.ndarray, crop: int = 16, batch: int = 1024) -> torch.Tensor:
    """Raw output ``t̃`` (H, W) with K = 1: each pixel is run at the centre of its own crop."""
    h, w = ans.shape
    s = min(crop, h, w)
    dev = next(net.parameters()).device
    padded = _padded_input(ans, s, dev)
    patches = F.unfold(padded, s)[0].T.reshape(-1, 1, s, s)  # (H·W, 1, s, s), row-major
    out = torch.cat([net(patches[i:i + batch])[:, 0, s // 2, s // 2]
                     for i in range(0, patches.shape[0], batch)])
    return out.reshape(h, w)


@torch.no_grad()
def raw_full_image(net: UNet, ans: np.ndarray, crop: int = 16) -> torch.Tensor:
    """Raw output ``t̃`` (H, W) from one pass over the same padded map."""
    h, w = ans.shape
    s = min(crop, h, w)
    dev = next(net.parameters()).device
    a = s // 2
    return net(_padded_input(ans, s, dev))[0, 0, a:a + h, a:a + w]


def paper_unet_dwell(
    net: UNet,
    counts: np.ndarray,
    t0: np.ndarray | float,
    t1: float,
    *,
    weights: np.ndarray | None = None,
    crop: int = 16,
    full_image: bool = False,
) -> np.ndarray:
    """Dwell map (H, W) seconds with mean t1: MA layer (Eq. 4) over all pixels of the raw output
    at crop centres (paper, K = 1) or of one full-image pass."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[None] if counts.ndim == 2 else counts
    w = np.ones(counts.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    t0_map = np.broadcast_to(np.asarray(t0, dtype=np.float64), counts.shape[1:])
    _, _, ans = _prepare(counts, t0_map, w)
    raw = raw_full_image(net, ans, crop) if full_image else raw_crop_centres(net, ans, crop)
    return ma_layer(raw.double(), t1).cpu().numpy()
