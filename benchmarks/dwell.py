"""Dwell-policy benchmark in the style of Table 1 of paper 000.

For every scene × element map × split ``(t0, t1)`` (seconds): draw a first pass
``X0 ~ Poisson(ψ t0)``, let each policy allocate a second pass of mean ``t1`` from ``X0`` alone (one
element map at a time, C = 1, as in the paper), draw ``X1 ~ Poisson(ψ t)``, pool
``(X0 + X1)/(t0 + t)`` and compare with the truth ψ (counts/s): RMSE, gain over uniform, efficiency
against the oracle, relative bias and the wall time of the allocation.

``scenes`` are ``(name, element_names, rates)`` with ``rates`` ``(C, H, W)`` counts/s.
:func:`synthetic_scenes` builds a few from scikit-image sample pictures for development.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from dwellwise.models.metrics import bias, efficiency, gain_over_uniform, pooled_estimate, rmse
from dwellwise.planners import allocate_dwell, list_policies

Scene = tuple[str, Sequence[str], np.ndarray]
DEFAULT_SPLITS: tuple[tuple[float, float], ...] = ((0.002, 0.008), (0.005, 0.005), (0.007, 0.003))
"""(t0, t1) seconds: the paper's 2+8, 5+5 and 7+3 ms splits of a 10 ms mean."""


def _split_name(t0: float, t1: float) -> str:
    return f"{t0 * 1e3:g}+{t1 * 1e3:g}"


def run_dwell_benchmark(
    scenes: Iterable[Scene],
    splits: Sequence[tuple[float, float]] = DEFAULT_SPLITS,
    policies: Sequence[str] | None = None,
    seed: int = 0,
    repeats: int = 1,
    policy_options: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Benchmark rows, one per scene × element × split × policy.

    ``policies`` defaults to every registered policy; ``uniform`` and ``oracle`` are always run
    since gain and efficiency are measured against them. ``repeats`` second passes are drawn per
    allocation and their squared errors averaged. ``policy_options`` gives extra keyword options per
    policy name (e.g. ``{"n2v-sqrt": {"deadline": 30}}``). Row keys: ``scene, element, split, t0,
    t1, policy, rmse, gain, efficiency, bias, wall_s, mean_rate``.
    """
    names = list(list_policies()) if policies is None else list(policies)
    names = ["uniform"] + [p for p in names if p not in ("uniform", "oracle")] + ["oracle"]
    policy_options = policy_options or {}
    rows: list[dict[str, Any]] = []
    case = 0
    for scene_name, elements, rates in scenes:
        rates = np.asarray(rates, dtype=np.float64)
        if rates.ndim == 2:
            rates = rates[None]
        if len(elements) != rates.shape[0]:
            raise ValueError(
                f"scene {scene_name!r}: {len(elements)} names for {rates.shape[0]} maps"
            )
        for element, psi in zip(elements, rates, strict=True):
            if not psi.mean() > 0:
                continue
            for t0, t1 in splits:
                case_rng = np.random.default_rng([seed, case])
                case += 1
                x0 = case_rng.poisson(psi * t0).astype(np.float64)
                second_seed = int(case_rng.integers(2**63))
                results = {}
                for name in names:
                    opts = dict(policy_options.get(name, {}))
                    if name == "oracle":
                        opts["rates"] = psi
                    start = time.perf_counter()
                    dwell = allocate_dwell(x0, t0, t1, policy=name, seed=seed, **opts)
                    wall = time.perf_counter() - start
                    pass_rng = np.random.default_rng(second_seed)  # common random numbers
                    sq_err, err = 0.0, 0.0
                    for _ in range(repeats):
                        x1 = pass_rng.poisson(psi * dwell)
                        est = pooled_estimate(x0, x1, t0, dwell)
                        sq_err += rmse(est, psi) ** 2
                        err += bias(est, psi)
                    results[name] = (np.sqrt(sq_err / repeats), err / repeats, wall)
                base = results["uniform"][0]
                oracle_gain = gain_over_uniform(results["oracle"][0], base)
                for name, (r, b, wall) in results.items():
                    gain = gain_over_uniform(r, base)
                    rows.append(
                        dict(
                            scene=scene_name,
                            element=element,
                            split=_split_name(t0, t1),
                            t0=t0,
                            t1=t1,
                            policy=name,
                            rmse=r,
                            gain=gain,
                            efficiency=efficiency(gain, oracle_gain),
                            bias=b,
                            wall_s=wall,
                            mean_rate=float(psi.mean()),
                        )
                    )
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per policy: mean and min efficiency, share of cases beating uniform, worst |bias|, mean wall.

    Cases where the oracle gains nothing (efficiency NaN) are left out of the efficiency figures.
    """
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["policy"] for r in rows):
        sel = [r for r in rows if r["policy"] == name]
        eff = np.array([r["efficiency"] for r in sel], dtype=float)
        eff = eff[np.isfinite(eff)]
        out[name] = dict(
            cases=len(sel),
            mean_efficiency=float(eff.mean()) if eff.size else float("nan"),
            min_efficiency=float(eff.min()) if eff.size else float("nan"),
            mean_gain=float(np.mean([r["gain"] for r in sel])),
            beats_uniform=float(np.mean([r["gain"] > 0 for r in sel])),
            max_abs_bias=float(np.max(np.abs([r["bias"] for r in sel]))),
            mean_wall_s=float(np.mean([r["wall_s"] for r in sel])),
        )
    return out


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: a summary per policy, then Table-1-style RMSE (counts/s) per case and policy."""
    summary = summarize(rows)
    lines = [
        "| policy | cases | mean efficiency | min efficiency | mean gain | beats uniform "
        "| max abs bias | mean wall (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['cases']} | {s['mean_efficiency']:.3f} | {s['min_efficiency']:.3f} "
            f"| {s['mean_gain']:.2%} | {s['beats_uniform']:.0%} | {s['max_abs_bias']:.2%} "
            f"| {s['mean_wall_s']:.3f} |"
        )
    policies = list(summary)
    lines += [
        "",
        "| scene | element | split | " + " | ".join(policies) + " |",
        "|---|---|---|" + "---:|" * len(policies),
    ]
    cases: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        cases.setdefault((r["scene"], r["element"], r["split"]), {})[r["policy"]] = r
    for (scene, element, split), by_policy in cases.items():
        cells = []
        for p in policies:
            r = by_policy.get(p)
            cells.append("" if r is None else f"{r['rmse']:.4g} ({r['efficiency']:.2f})")
        lines.append(f"| {scene} | {element} | {split} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("RMSE of the pooled estimate (counts/s); efficiency vs the oracle in brackets.")
    return "\n".join(lines) + "\n"


def write_markdown(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Write ``title`` and :func:`markdown_table` of ``rows`` to ``path``; returns the path."""
    path = Path(path)
    path.write_text(f"## {title}\n\n" + markdown_table(rows))
    return path


def synthetic_scenes(shape: tuple[int, int] = (128, 128), max_rate: float = 2000.0) -> list[Scene]:
    """Development scenes from scikit-image pictures, rates 0..``max_rate`` counts/s.

    Per picture: its three colour channels and a thresholded (bright-region) mask as four element
    maps. Plus a sparse map of a few Gaussian spots on a faint background.
    """
    from skimage import data, transform

    scenes: list[Scene] = []
    for name in ("astronaut", "coffee", "chelsea"):
        rgb = transform.resize(getattr(data, name)(), shape, anti_aliasing=True)
        gray = rgb.mean(axis=2)
        mask = (gray > np.quantile(gray, 0.7)).astype(float)
        maps = np.concatenate([rgb.transpose(2, 0, 1), mask[None]], axis=0)
        scenes.append((name, ["red", "green", "blue", "mask"], maps * max_rate))
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    sparse = np.full(shape, 0.01 * max_rate)
    for _ in range(6):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        width = rng.uniform(1.5, 5.0)
        sparse += max_rate * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
    scenes.append(("sparse", ["spots"], np.minimum(sparse, max_rate)[None]))
    return scenes


def plot_dwell_maps(
    rates: np.ndarray,
    t0: float,
    mean_dwell: float,
    path: str | Path,
    policies: Sequence[str] = ("uniform", "bilevel", "blindspot-sqrt", "oracle"),
    seed: int = 0,
) -> Path:
    """PNG of one element map: truth (counts/s), first pass, and each policy's dwell map (ms).

    ``rates`` is ``(H, W)`` counts/s; the first pass is ``Poisson(rates · t0)``. All dwell maps
    share one colour scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    psi = np.asarray(rates, dtype=np.float64)
    x0 = np.random.default_rng(seed).poisson(psi * t0)
    maps = {}
    for name in policies:
        opts = {"rates": psi} if name == "oracle" else {}
        maps[name] = 1e3 * allocate_dwell(x0, t0, mean_dwell, policy=name, seed=seed, **opts)
    vmax = max(float(m.max()) for m in maps.values())
    fig, axes = plt.subplots(1, 2 + len(maps), figsize=(3.2 * (2 + len(maps)), 3.4))
    panels = [("truth (counts/s)", psi, None), (f"first pass, t0 = {t0 * 1e3:g} ms", x0, None)]
    panels += [(f"{n} (ms)", m, vmax) for n, m in maps.items()]
    for ax, (title, img, top) in zip(axes, panels, strict=True):
        shown = ax.imshow(img, cmap="magma", vmin=0, vmax=top)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
