"""Moving spectra between energy calibrations.

A cube may come from any detector calibration (channel count, width, offset); every analysis
model works on its own fixed :class:`~dwellwise.simulators.energy.EnergyAxis`. Resampling
redistributes each source channel's counts over the target channels it overlaps, in proportion
to the overlap (the cumulative spectrum is interpolated linearly at the target channel edges).
Counts inside the common energy range are conserved, and a peak stays at its energy: its
centroid moves by less than one target channel width.
"""

from __future__ import annotations

import numpy as np
from dwellwise.simulators.energy import EnergyAxis


def axis_of(energy_kev: np.ndarray) -> EnergyAxis:
    """The linear calibration of a file's ``energy`` dataset (channel centres, keV), with a
    message a person can act on when it is missing or not linear."""
    energy = np.asarray(energy_kev, dtype=np.float64)
    if energy.ndim != 1 or energy.size < 2 or not np.all(np.isfinite(energy)):
        raise ValueError(
            f"the cube has no usable energy axis (need a 1-D array of channel energies in keV, "
            f"got shape {energy.shape})"
        )
    if not np.all(np.diff(energy) > 0):
        raise ValueError("the cube's energy axis must increase channel by channel (keV)")
    return EnergyAxis.from_centers(energy)


def resampling_matrix(source: EnergyAxis, target: EnergyAxis) -> np.ndarray:
    """``(E_source, E_target)`` float64: ``target_counts = source_counts @ M``.

    Entry ``[i, j]`` is the fraction of source channel ``i`` that lies inside target channel
    ``j``; rows of source channels entirely outside the target axis are zero (those counts are
    dropped), so every row sums to at most 1.
    """
    src, dst = source.edges, target.edges
    lo = np.maximum(src[:-1, None], dst[None, :-1])
    hi = np.minimum(src[1:, None], dst[None, 1:])
    overlap = np.clip(hi - lo, 0.0, None)
    return overlap / np.diff(src)[:, None]


def resample_counts(spectra: np.ndarray, source: EnergyAxis, target: EnergyAxis) -> np.ndarray:
    """Resample spectra ``(..., E_source)`` (counts per channel) onto ``target`` channels:
    ``(..., E_target)`` float32. Identical calibrations are returned unchanged (as float32)."""
    spectra = np.asarray(spectra)
    if spectra.shape[-1] != source.channels:
        raise ValueError(
            f"spectra have {spectra.shape[-1]} channels, the calibration has {source.channels}"
        )
    if source == target:
        return spectra.astype(np.float32, copy=False)
    matrix = _cached_matrix(source, target)
    flat = spectra.reshape(-1, source.channels).astype(np.float32, copy=False)
    return (flat @ matrix).reshape(*spectra.shape[:-1], target.channels)


_MATRICES: dict[tuple[EnergyAxis, EnergyAxis], np.ndarray] = {}


def _cached_matrix(source: EnergyAxis, target: EnergyAxis) -> np.ndarray:
    key = (source, target)
    if key not in _MATRICES:
        if len(_MATRICES) > 8:
            _MATRICES.clear()
        _MATRICES[key] = resampling_matrix(source, target).astype(np.float32)
    return _MATRICES[key]
