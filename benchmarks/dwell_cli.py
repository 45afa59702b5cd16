"""``dwellwise bench dwell``: dwell policies on simulated painting scenes, Table-1 style.

Scenes come from the simulator (ROI rates of every element bright enough to matter); results go
to ``benchmarks/RESULTS.md`` and a PNG of dwell maps.

* ``dwellwise bench dwell`` runs the **development** scenes (astronaut, coffee and one procedural
  painting), the ones the policies were developed and diagnosed on, with every policy.
* ``python -m dwellwise.benchmarks.dwell_cli --held-out`` runs **held-out** scenes that were not
  looked at while developing (four other scikit-image pictures and two procedural seeds) with the
  policies that need no hour of CPU (``paper-unet`` is left out there), into its own section.

CPU configuration: 64×64 maps, one first pass per case, ``paper-unet`` at 30 training steps.
With CUDA available the run is larger: 128×128, two first passes, ``paper-unet`` at its default
step count. ``--quick``: a smoke test (32×32, 3 ``paper-unet`` and 30 ``n2v-sqrt`` steps), not
recorded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from dwellwise.benchmarks.dwell import (
    markdown_table,
    plot_dwell_maps,
    run_dwell_benchmark,
    summarize,
)
from dwellwise.benchmarks.results import RESULTS, record_section
from dwellwise.simulators.scenes import load_scene

DEV_SCENES: tuple[tuple[str, int], ...] = (("astronaut", 0), ("coffee", 1), ("procedural", 2))
"""(scene, seed) pairs the policies were developed on."""
HELD_OUT_SCENES: tuple[tuple[str, int], ...] = (
    ("chelsea", 100), ("rocket", 101), ("immunohistochemistry", 102), ("colorwheel", 103),
    ("procedural", 104), ("procedural", 105),
)
"""(scene, seed) pairs never used while developing the policies."""
HELD_OUT_POLICIES = ("bilevel", "blindspot-sqrt", "n2v-sqrt", "auto")
MIN_PEAK_COUNTS_10MS = 5.0
"""Element maps whose brightest pixel gets fewer counts at 10 ms are left out (pure noise)."""
LEARNED_DEADLINE_S = 120.0
"""Deadline given to ``n2v-sqrt`` and ``auto``: long enough that the step count, not the load
of a shared machine, ends the training (the product's default is 20 s; a 64×64 map trains in
3-5 s on one CPU core)."""


def painting_scenes(pairs=DEV_SCENES, shape=(64, 64)):
    """``(name, elements, roi_rates)`` for each (scene, seed), bright-enough element maps only."""
    out = []
    names = [name for name, _ in pairs]
    for name, seed in pairs:
        scene = load_scene(name, shape, seed=seed)
        keep = [
            c
            for c in range(len(scene.elements))
            if scene.roi_rates[c].max() * 0.01 >= MIN_PEAK_COUNTS_10MS
        ]
        label = f"{name}-s{seed}" if names.count(name) > 1 else name
        out.append((label, [scene.elements[c] for c in keep], scene.roi_rates[keep]))
    return out


def _config(quick: bool) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.is_available() and not quick
    learned: dict[str, Any] = {"deadline": LEARNED_DEADLINE_S}
    paper: dict[str, Any] = {} if gpu else {"steps": 30}
    if quick:  # a smoke test of the whole pipeline, not a measurement
        learned, paper = {**learned, "steps": 30}, {"steps": 3}
    return dict(
        shape=(32, 32) if quick else (128, 128) if gpu else (64, 64),
        first_passes=2 if gpu else 1,
        options={"paper-unet": paper, "n2v-sqrt": learned, "auto": learned},
        device="CUDA" if gpu else "CPU",
    )


def _summary_lines(summary: dict[str, dict[str, float]]) -> str:
    head = next(iter(summary.values()), {})
    lines = ["| policy | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    lines += [
        f"| {p} | " + " | ".join(f"{v:.3g}" for v in s.values()) + " |" for p, s in summary.items()
    ]
    return "\n".join(lines)


def run(held_out: bool = False, quick: bool = False) -> int:
    """Run one configuration, print its tables and (unless ``quick``) record them."""
    cfg = _config(quick)
    pairs = HELD_OUT_SCENES if held_out else DEV_SCENES
    scenes = painting_scenes(pairs, shape=cfg["shape"])
    start = time.perf_counter()
    rows = run_dwell_benchmark(
        scenes, seed=0, first_passes=cfg["first_passes"], policy_options=cfg["options"],
        policies=HELD_OUT_POLICIES if held_out else None, progress=True,
    )
    wall = time.perf_counter() - start
    table = markdown_table(rows)
    summary = summarize(rows)
    print(table)
    print(_summary_lines(summary))
    print(f"wall time {wall:.0f} s")
    if quick:
        return 0
    h, w = cfg["shape"]
    kind = "held-out" if held_out else "development"
    command = "python -m dwellwise.benchmarks.dwell_cli --held-out" if held_out else (
        "dwellwise bench dwell"
    )
    body = (
        f"## Dwell policies on simulated paintings, {kind} scenes (`{command}`)\n\n"
        f"Scenes {', '.join(f'{n} (seed {s})' for n, s in pairs)} at {h}×{w}, ROI rates of every "
        f"element with ≥ 5 counts at 10 ms in its brightest pixel; splits 2+8, 5+5, 7+3 ms; "
        f"{cfg['first_passes']} first pass(es) per case; {cfg['device']} configuration "
        f"(policy options {cfg['options']}); {len(rows) // len(summary)} cases, "
        f"{wall / 60:.1f} min in all. Second pass in expectation, bias by control variate with its "
        "standard error (see `benchmarks/dwell.py`).\n\n"
        + table
    )
    if not held_out:
        png = Path(RESULTS).with_name("dwell_maps.png")
        name, elements, rates = scenes[0]
        plot_dwell_maps(
            rates[elements.index("Pb_L")] if "Pb_L" in elements else rates[0], 0.002, 0.008, png,
            policies=("uniform", "bilevel", "paper-unet", "blindspot-sqrt", "n2v-sqrt", "oracle"),
            policy_options=cfg["options"],
        )
        body += f"\nDwell maps ({name}, 2+8 ms): `{png.name}`."
    record_section("dwell-held-out" if held_out else "dwell", body)
    return 0


def main(quick: bool = False) -> int:
    """``dwellwise bench dwell``: the development scenes."""
    return run(held_out=False, quick=quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held-out", action="store_true", help="the held-out scenes")
    parser.add_argument("--quick", action="store_true", help="32×32, nothing recorded")
    args = parser.parse_args()
    sys.exit(run(held_out=args.held_out, quick=args.quick))
