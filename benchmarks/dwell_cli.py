"""``dwellwise bench dwell``: dwell policies on simulated painting scenes, Table-1 style.

Scenes come from the simulator (ROI rates of every element of several paintings, including a
procedural one per seed); results go to ``benchmarks/RESULTS.md`` and a PNG of dwell maps.
"""

from __future__ import annotations

from pathlib import Path

from dwellwise.benchmarks.dwell import (
    markdown_table,
    plot_dwell_maps,
    run_dwell_benchmark,
    summarize,
)
from dwellwise.benchmarks.results import RESULTS, record_section
from dwellwise.simulators.scenes import load_scene

CPU_SCENES = ("astronaut", "coffee", "procedural")
MIN_PEAK_COUNTS_10MS = 5.0
"""Element maps whose brightest pixel gets fewer counts at 10 ms are left out (pure noise)."""


def painting_scenes(names=CPU_SCENES, shape=(64, 64), seed=0):
    """``(name, elements, roi_rates)`` for each scene, bright-enough element maps only."""
    out = []
    for i, name in enumerate(names):
        scene = load_scene(name, shape, seed=seed + i)
        keep = [
            c
            for c in range(len(scene.elements))
            if scene.roi_rates[c].max() * 0.01 >= MIN_PEAK_COUNTS_10MS
        ]
        out.append((name, [scene.elements[c] for c in keep], scene.roi_rates[keep]))
    return out


def main(quick: bool = False) -> int:
    shape = (32, 32) if quick else (64, 64)
    scenes = painting_scenes(shape=shape)
    # paper-unet at the paper's default length takes ~18 s per map on 2 CPU cores; 30 steps keeps
    # the CPU configuration under 10 minutes (its docstring lists the step count as unspecified).
    rows = run_dwell_benchmark(scenes, seed=0, policy_options={"paper-unet": {"steps": 30}})
    table = markdown_table(rows)
    summary = summarize(rows)
    print(table)
    print(summary)
    if not quick:
        png = Path(RESULTS).with_name("dwell_maps.png")
        name, elements, rates = scenes[0]
        plot_dwell_maps(
            rates[elements.index("Pb_L")] if "Pb_L" in elements else rates[0], 0.002, 0.008, png
        )
        lines = [
            f"| {p} | " + " | ".join(f"{v:.3g}" for v in s.values()) + " |"
            for p, s in summary.items()
        ]
        head = next(iter(summary.values()), {})
        body = (
            "## Dwell policies on simulated paintings (`dwellwise bench dwell`)\n\n"
            f"Scenes {', '.join(CPU_SCENES)} at {shape[0]}×{shape[1]}, ROI rates of every element "
            "with ≥ 5 counts at 10 ms in its brightest pixel; splits 2+8, 5+5, 7+3 ms.\n\n"
            "| policy | "
            + " | ".join(head)
            + " |\n|---|"
            + "---|" * len(head)
            + "\n"
            + "\n".join(lines)
            + "\n\n"
            + table
            + f"\n\nDwell maps: `{png.name}`."
        )
        record_section("dwell", body)
    return 0
