"""``dwellwise bench pigments-pymca``: the pigment CNN on spectra from another physics code.

The held-out two-layer stacks of ``bench pigments`` (2,000 at the 1 s reference live time) are
recorded three ways with the same rates: by our photon-counting simulator, and with PyMca's peak
groups and scatter peaks (:mod:`dwellwise.benchmarks.pymca_physics`), once as pure Gaussians and
once with PyMca's hypermet tails and step. Labels stay those of our physics (a pigment is a
positive where its net counts reach the Currie limit). Needs the optional ``pymca`` extra.
"""

from __future__ import annotations

import time

import numpy as np
from dwellwise.benchmarks.element_maps import publish
from dwellwise.benchmarks.pymca_physics import HYPERMET_ALL, PymcaRecorder, pymca_missing
from dwellwise.benchmarks.results import markdown_table
from dwellwise.models.calibration import resample_counts
from dwellwise.models.pigment_data import (
    HELDOUT_RECIPE,
    HELDOUT_STREAM,
    draw_layers,
    physics,
    spectra_from_layers,
)
from dwellwise.models.pigment_metrics import macro_f1, per_class_scores, threshold
from dwellwise.models.pigment_net import load_pigment_model

SEED = 31
"""Seed of the held-out stacks (``[SEED, HELDOUT_STREAM]``)."""
FULL = {"n": 2000}
QUICK = {"n": 150}


def pymca_counts(layers, axis, recorder, live_time_s: float, rng) -> np.ndarray:
    """Poisson counts of the stacks with PyMca's peaks on the 4096-channel detector axis,
    resampled onto ``axis`` like ``dwellwise analyze`` does: ``(N, E)`` float32."""
    phys = physics(axis)
    expected = recorder.expected_spectra(phys.detector_model, phys.component_rates(layers))
    counts = rng.poisson(expected * live_time_s).astype(np.uint32)
    return resample_counts(counts, phys.detector_model.axis, axis).astype(np.float32)


def main(quick: bool = False) -> int:
    missing = pymca_missing()
    if missing is not None:
        print(missing)
        return 1
    cfg = QUICK if quick else FULL
    started = time.perf_counter()
    net = load_pigment_model(device="cpu")
    live = HELDOUT_RECIPE.reference_live_time_s
    rng = np.random.default_rng([SEED, HELDOUT_STREAM])
    layers = draw_layers(cfg["n"], rng, HELDOUT_RECIPE)
    ours = spectra_from_layers(
        layers, rng=rng, recipe=HELDOUT_RECIPE, axis=net.axis, live_time_s=live, end_to_end=True
    )
    recordings = {"ours (photon counting)": ours.counts}
    for label, flag in (("PyMca, Gaussian peaks", 1), ("PyMca, hypermet peaks", HYPERMET_ALL)):
        recorder = PymcaRecorder(hypermet=flag)
        recordings[label] = pymca_counts(layers, net.axis, recorder, live, rng)
        print(f"recorded {label}", flush=True)
    scores = {}
    for label, counts in recordings.items():
        predicted = threshold(net.predict(counts, ours.live_time), net.thresholds)
        scores[label] = per_class_scores(ours.labels, predicted, net.names)
    rows = [
        [name, *(f"{scores[lab][i].f1:.3f}" for lab in scores)]
        for i, name in enumerate(net.names)
    ]
    rows.append(["**macro-F1**", *(f"**{macro_f1(s):.3f}**" for s in scores.values())])
    parts = [
        f"## Pigments on another code's spectra (`dwellwise bench pigments-pymca"
        f"{' --quick' if quick else ''}`)",
        f"{cfg['n']:,} held-out two-layer stacks of `bench pigments` at {live:g} s live time, "
        "recorded with the same rates by our photon-counting simulator and with PyMca's peak "
        "groups (its line library and ratios, escape peaks, scatter peaks; our continuum shape; "
        "145 eV at Mn Kα), as pure Gaussians and with PyMca's default hypermet tails and step. "
        f"Shipped CNN ({net.label}); F1 per class against the labels of our physics.",
        "### F1\n\n" + markdown_table(["pigment", *scores], rows),
    ]
    publish("pigments-pymca", parts, [], started, quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
