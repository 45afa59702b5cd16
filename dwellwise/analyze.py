"""``dwellwise analyze``: elemental maps and pigment maps of a finished cube, written into it.

The cube's spectra are read in blocks of rows (memory stays bounded by ``chunk_pixels``
spectra, whatever the cube's size), resampled onto each model's energy calibration and turned
into per-pixel outputs. Results, in the layout PyXRF and PyMca users know::

    /xrfmap/detsum/xrf_fit          (N, H, W) float32 counts/s, @model @units @created ...
                                    @scale_vs_linear_fit (a network's maps against the fit)
                                    @weights (file, SHA-256 prefix, training command)
    /xrfmap/detsum/xrf_fit_name     (N,) fixed-length ASCII names: Fe_K, Pb_L ... (PyXRF)
    /entry/analysis/pigments/       probability (P, H, W) float32 0..1, names (P,)
    /entry/analysis/linear_fit/     maps (N, H, W) float32 counts/s, names (N,): the linear-fit
                                    baseline, written beside the maps of a network

Models (:mod:`dwellwise.models.registry`): ``maps`` is the shipped elemental-map network, or
the linear fit when no trained weights are installed; ``pigments`` the pigment classifier;
``linear`` the linear fit. With the default model set a missing pigment model is skipped with
a note; named explicitly, it is an error. The linear fit is adapted to each cube: its sum
spectrum decides which element families to fit (plus the 12 targets of paper 002) and weights
the channels (:meth:`LinearFit.for_spectrum`), on the cube's own calibration.

Safety: the file is checked read-only first (HDF5, ``/entry/data/counts`` (H, W, E),
``/entry/data/energy`` increasing keV, ``/entry/data/live_time`` (H, W), a scan that is not
``running``) and the models are loaded before anything is written, so bad input changes
nothing. Results are computed under ``/entry/analysis/.partial`` and moved to their final
names only when complete: a crash part-way leaves the previous results (or, inside the
moment of the swap, none), never a half-written dataset under a final name. The measured data
is never touched. Re-running replaces the results it computes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

import dwellwise
from dwellwise.hdf5_open import open_readonly
from dwellwise.simulators.energy import EnergyAxis

DEFAULT_MODELS = ("maps", "pigments")
"""Models run when none are named."""
CHUNK_PIXELS = 4096
"""Spectra read and analysed at a time (about 64 MiB of counts at 4096 channels)."""
PARTIAL = "entry/analysis/.partial"
"""Group where results are computed before they are moved to their final names."""
XRF_FIT = "xrfmap/detsum/xrf_fit"
XRF_FIT_NAME = "xrfmap/detsum/xrf_fit_name"
PIGMENTS = "entry/analysis/pigments"
LINEAR_FIT = "entry/analysis/linear_fit"
AGREEMENT = (0.8, 1.25)
"""Range of the least-squares scale α (network map = α · linear-fit map) inside which a
network's element map is taken to agree with the fit beside it; outside, ``analyze`` says so.
On the held-out benchmarks well-measured elements agree within a few percent; the networks fall
outside on faint elements at long dwell (Cu maps of 15-19 counts/s at 1 s: α 0.65 and 0.93 with
the shipped 1DCNN+, 0.30 and 0.54 before it had its linear skip)."""
AGREEMENT_MIN_COUNTS = 1000.0
"""Fewest counts of a family (linear fit, whole cube) for the comparison: below, the fit's map
is too noisy to judge a network's by."""


class AnalysisError(ValueError):
    """The cube or the request cannot be analysed; the message says why and what to do."""


@dataclass(frozen=True)
class AnalysisSummary:
    """What ``dwellwise analyze`` did."""

    path: Path
    """The cube file."""
    shape: tuple[int, int]
    """Pixels, (H, W)."""
    maps_model: str | None
    """Label of the model behind ``/xrfmap/detsum/xrf_fit`` (None: maps not computed)."""
    map_names: tuple[str, ...]
    """Names in ``xrf_fit_name``."""
    linear_names: tuple[str, ...]
    """Names of the linear-fit baseline under ``/entry/analysis/linear_fit`` (empty: none)."""
    pigment_model: str | None
    """Label of the pigment model (None: pigments not computed)."""
    pigment_names: tuple[str, ...]
    """Pigment names of ``/entry/analysis/pigments/names``."""
    pngs: tuple[Path, ...]
    """PNG files written."""
    notes: tuple[str, ...]
    """Things a person should know (fallbacks, skipped models, maps that disagree)."""
    scale_vs_linear_fit: dict[str, float]
    """Per element family compared: α of ``network map = α · linear-fit map`` (least squares
    through the origin), for the families of a network's maps that the fit beside them saw
    with at least :data:`AGREEMENT_MIN_COUNTS` counts (empty without a network)."""
    seconds: float
    """Wall time, seconds."""
    spectra_per_second: float
    """Pixels analysed per wall second (reading included)."""


@dataclass
class _Cube:
    """What the read-only inspection learnt about the file."""

    shape: tuple[int, int]
    axis: EnergyAxis
    counts_dtype: np.dtype
    unmeasured: int
    """Pixels without live time (never measured: a scan stopped early)."""


@dataclass
class _Product:
    """One result computed in a pass over the cube."""

    key: str
    """``maps``, ``linear_fit`` or ``pigments``."""
    predictor: object
    names: tuple[str, ...]
    buffer: str = ""
    """Path of its dataset under ``PARTIAL``."""


def analyze_cube(
    path: str | Path,
    *,
    models: Sequence[str] | None = None,
    png_dir: str | Path | None = None,
    chunk_pixels: int = CHUNK_PIXELS,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisSummary:
    """Analyse the cube file at ``path`` and write the results into it (see the module
    docstring); ``models`` from ``maps``, ``pigments``, ``linear`` (default ``maps`` and
    ``pigments``); PNGs into ``png_dir`` when given; ``progress(done, total)`` in rows.
    Raises :class:`AnalysisError` (file left as it was) for bad input."""
    from dwellwise.models.registry import MissingWeights, check_model_names

    start = time.perf_counter()
    path = Path(path)
    explicit = models is not None
    if isinstance(models, str):  # "maps,pigments" as the CLI spells it
        models = models.split(",")
    try:
        names = check_model_names(tuple(models) if explicit else DEFAULT_MODELS)
    except ValueError as exc:
        raise AnalysisError(str(exc)) from None
    if int(chunk_pixels) < 1:
        raise AnalysisError(f"chunk_pixels must be at least 1, got {chunk_pixels}")
    cube = inspect_cube(path)
    png_path = _check_png_dir(png_dir)
    notes: list[str] = []
    if cube.unmeasured:
        notes.append(
            f"{cube.unmeasured} of {cube.shape[0] * cube.shape[1]} pixels were never measured (no "
            "live time: the scan stopped early); every map and pigment probability is NaN there, "
            "not 0"
        )
    try:
        maps, wants_linear, pigments = _load_models(names, explicit, device, cube, notes)
    except MissingWeights as exc:
        raise AnalysisError(str(exc)) from None
    except ValueError as exc:  # an unknown device, a calibration the model cannot use
        raise AnalysisError(str(exc)) from None
    h = cube.shape[0]
    total_rows = (2 if wants_linear else 1) * h
    done = [0]

    def tick(rows: int) -> None:
        done[0] += rows
        if progress is not None:
            progress(done[0], total_rows)

    linear = _adapt_linear_fit(path, cube, chunk_pixels, device, tick) if wants_linear else None
    products = _products(maps, linear, pigments)
    _compute(path, cube, products, chunk_pixels, tick)
    scales = _commit(path, products)
    notes += _disagreement_notes(scales, products)
    pngs: list[Path] = []
    if png_path is not None:
        try:
            pngs = _save_pngs(path, png_path, products)
        except OSError as exc:  # the results are in the file already
            notes.append(f"PNGs not written to {png_path}: {exc}")
    seconds = time.perf_counter() - start
    by_key = {p.key: p for p in products}
    m = by_key.get("maps")
    lf = by_key.get("linear_fit")
    pg = by_key.get("pigments")
    return AnalysisSummary(
        path=path,
        shape=cube.shape,
        maps_model=m.predictor.label if m else None,
        map_names=m.names if m else (),
        linear_names=lf.names if lf else (),
        pigment_model=pg.predictor.label if pg else None,
        pigment_names=pg.names if pg else (),
        pngs=tuple(pngs),
        notes=tuple(notes),
        scale_vs_linear_fit=scales,
        seconds=seconds,
        spectra_per_second=cube.shape[0] * cube.shape[1] / max(seconds, 1e-9),
    )


# -- checks (read-only) -----------------------------------------------------------------------
def inspect_cube(path: Path) -> _Cube:
    """Check that ``path`` is a finished cube this module can analyse, without changing it."""
    if not path.exists():
        raise AnalysisError(f"{path}: no such file")
    if not path.is_file():
        raise AnalysisError(f"{path}: not a file")
    if not h5py.is_hdf5(path):
        raise AnalysisError(f"{path}: not an HDF5 file (expected a dwellwise cube file, .h5)")
    with _open_read(path) as f:
        counts = f.get("entry/data/counts")
        if not isinstance(counts, h5py.Dataset):
            raise AnalysisError(
                f"{path}: no /entry/data/counts dataset: not a dwellwise cube file "
                "(a cube holds spectra as /entry/data/counts (H, W, E))"
            )
        if counts.ndim != 3 or min(counts.shape) < 1:
            raise AnalysisError(
                f"{path}: /entry/data/counts must be (H, W, E) spectra, has shape {counts.shape}"
            )
        if not (
            np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)
        ):
            raise AnalysisError(f"{path}: /entry/data/counts holds {counts.dtype}, not numbers")
        energy = f.get("entry/data/energy")
        if not isinstance(energy, h5py.Dataset):
            raise AnalysisError(
                f"{path}: no energy axis (/entry/data/energy, keV per channel): the models "
                "need the calibration to read the spectra"
            )
        try:
            axis = _axis(energy[()])
        except ValueError as exc:
            raise AnalysisError(f"{path}: {exc}") from None
        if axis.channels != counts.shape[2]:
            raise AnalysisError(
                f"{path}: /entry/data/energy has {axis.channels} channels, the spectra "
                f"{counts.shape[2]}"
            )
        live = f.get("entry/data/live_time")
        if not isinstance(live, h5py.Dataset) or live.shape != counts.shape[:2]:
            got = getattr(live, "shape", None)
            raise AnalysisError(
                f"{path}: /entry/data/live_time must be (H, W) = {counts.shape[:2]} seconds "
                f"(got {'nothing' if live is None else got}); rates need live times"
            )
        status = _status(f)
        if status == "running":
            raise AnalysisError(
                f"{path}: the scan is still running (/entry/scan_status); analyse it when it "
                "has finished (a scan whose daemon died stays 'running' until it is resumed)"
            )
        live_s = np.asarray(live[()], dtype=np.float64)
        unmeasured = int(np.count_nonzero(~measured(live_s)))
        return _Cube(shape=tuple(counts.shape[:2]), axis=axis, counts_dtype=counts.dtype, unmeasured=unmeasured)


def measured(live_time: np.ndarray) -> np.ndarray:
    """Pixels that were measured: a finite live time above 0 seconds."""
    return np.isfinite(live_time) & (live_time > 0)


def _axis(energy: np.ndarray) -> EnergyAxis:
    from dwellwise.models.calibration import axis_of

    energy = np.asarray(energy)
    if energy.dtype.kind not in "fiu":
        raise ValueError(f"the energy axis holds {energy.dtype}, not keV numbers")
    return axis_of(energy)


def _status(f: h5py.File) -> str | None:
    ds = f.get("entry/scan_status")
    if not isinstance(ds, h5py.Dataset):
        return None
    value = ds[()]
    if isinstance(value, bytes):
        return value.decode(errors="replace").strip().strip("\x00")
    return str(value).strip()


def _check_png_dir(png_dir: str | Path | None) -> Path | None:
    if png_dir is None:
        return None
    p = Path(png_dir)
    if p.exists() and not p.is_dir():
        raise AnalysisError(f"PNG folder {p} exists and is not a folder")
    if not p.exists() and not p.parent.is_dir():
        raise AnalysisError(f"cannot make PNG folder {p}: {p.parent} does not exist")
    return p


# -- models -----------------------------------------------------------------------------------
def _load_models(names, explicit: bool, device: str, cube: _Cube, notes: list[str]):
    """(maps network or None, whether a linear fit is needed, pigment model or None)."""
    from dwellwise.models.linear_fit import resolve_device
    from dwellwise.models.registry import MissingWeights, load_network, load_predictor

    resolve_device(device)  # a clear error for an unknown device before anything else
    maps = pigments = None
    linear = "linear" in names
    if "maps" in names:
        maps = load_network("maps", device=device)
        linear = True  # the maps themselves, or the baseline beside a network's
        if maps is None:
            notes.append("no trained element-map weights installed: the linear fit made the maps")
        else:
            _check_overlap(maps, cube)
    if "pigments" in names:
        try:
            pigments = load_predictor("pigments", device=device)
        except MissingWeights as exc:
            if explicit:
                raise
            notes.append(f"pigments skipped: {exc}")
        else:
            _check_overlap(pigments, cube)
    return maps, (True if linear else None), pigments


def _check_overlap(predictor, cube: _Cube) -> None:
    lo = max(predictor.axis.edges[0], cube.axis.edges[0])
    hi = min(predictor.axis.edges[-1], cube.axis.edges[-1])
    if hi <= lo:
        raise AnalysisError(
            f"the cube's energies ({cube.axis.edges[0]:.2f}..{cube.axis.edges[-1]:.2f} keV) do "
            f"not overlap those of the {predictor.label} model "
            f"({predictor.axis.edges[0]:.2f}..{predictor.axis.edges[-1]:.2f} keV)"
        )


def _adapt_linear_fit(path: Path, cube: _Cube, chunk_pixels: int, device: str, tick):
    """The linear fit for this cube: families found in its sum spectrum (one read-only pass)."""
    from dwellwise.models.linear_fit import LinearFit

    total = np.zeros(cube.axis.channels)
    with _open_read(path) as f:
        counts = f["entry/data/counts"]
        for r0, r1 in _row_blocks(cube.shape, chunk_pixels):
            total += counts[r0:r1].sum(axis=(0, 1), dtype=np.float64)
            tick(r1 - r0)
    try:
        return LinearFit.for_spectrum(total, cube.axis, device=device)
    except ValueError as exc:
        raise AnalysisError(f"the linear fit cannot use this cube: {exc}") from None


def _open_read(path: Path) -> h5py.File:
    try:
        return open_readonly(path)
    except OSError as exc:
        raise AnalysisError(f"{path}: cannot read the HDF5 file ({exc})") from None


def _open_write(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r+", libver="latest")
    except OSError as exc:
        raise AnalysisError(
            f"{path}: cannot open the file for writing ({exc}). Another process may be writing "
            "it (a scan or an analysis), or one was killed while writing it: then HDF5 keeps "
            "it marked open until the mark is cleared (`h5clear -m FILE`, or resuming the scan "
            "through the daemon); its data is intact and readable meanwhile"
        ) from None


def _products(maps, linear, pigments) -> list[_Product]:
    out = []
    if maps is not None:
        out.append(_Product("maps", maps, tuple(maps.names)))
        out.append(_Product("linear_fit", linear, tuple(linear.names)))
    elif linear is not None:
        out.append(_Product("maps", linear, tuple(linear.names)))
    if pigments is not None:
        out.append(_Product("pigments", pigments, tuple(pigments.names)))
    return out


# -- the pass over the cube ---------------------------------------------------------------------
def _row_blocks(shape: tuple[int, int], chunk_pixels: int):
    h, w = shape
    rows = max(1, int(chunk_pixels) // w)
    for r0 in range(0, h, rows):
        yield r0, min(h, r0 + rows)


def _compute(path: Path, cube: _Cube, products: list[_Product], chunk_pixels: int, tick) -> None:
    """Run every model over the cube into datasets under :data:`PARTIAL`.

    The datasets are created first and the file switched to SWMR mode, so that until the
    end HDF5 only adds chunks, in an order that keeps the file consistent: a process killed
    here leaves every earlier object (the measured data, the previous results) readable."""
    try:
        with _open_write(path) as f:
            if PARTIAL in f:  # left by a killed run: nothing under it is a result
                del f[PARTIAL]
            partial = f.create_group(PARTIAL)
            h, w = cube.shape
            for p in products:
                p.buffer = f"/{PARTIAL}/{p.key}"
                partial.create_dataset(
                    p.key,
                    shape=(len(p.names), h, w),
                    dtype=np.float32,
                    chunks=(1, min(h, max(1, chunk_pixels // w)), w),
                )
            f.flush()
            try:
                f.swmr_mode = True
            except (ValueError, RuntimeError, OSError):
                pass  # a file in an older HDF5 format: written without SWMR
            _run_models(f, cube, products, chunk_pixels, tick)
    except BaseException:
        _remove_partial(path)
        raise


def _run_models(f: h5py.File, cube: _Cube, products: list[_Product], chunk_pixels: int, tick):
    from dwellwise.models.calibration import resample_counts

    w = cube.shape[1]
    counts = f["entry/data/counts"]
    live_ds = f["entry/data/live_time"]
    for r0, r1 in _row_blocks(cube.shape, chunk_pixels):
        block = counts[r0:r1]
        n = block.shape[0] * w
        spectra = block.reshape(n, cube.axis.channels)
        live = np.asarray(live_ds[r0:r1], dtype=np.float64).reshape(n)
        for p in products:
            axis = p.predictor.axis
            x = spectra if axis == cube.axis else resample_counts(spectra, cube.axis, axis)
            out = np.asarray(p.predictor.predict(x, live), dtype=np.float32)
            if out.shape != (n, len(p.names)):
                raise RuntimeError(
                    f"the {p.predictor.label} model returned {out.shape}, expected "
                    f"{(n, len(p.names))}"
                )
            out[~measured(live)] = np.nan  # never measured: no rate, not 0
            f[p.buffer][:, r0:r1, :] = out.T.reshape(len(p.names), r1 - r0, w)
        f.flush()
        del block, spectra
        tick(r1 - r0)


def _remove_partial(path: Path) -> None:
    """Remove :data:`PARTIAL` after a failure, in a session of its own (SWMR mode cannot
    delete); if even that fails, the next run removes it."""
    try:
        with h5py.File(path, "r+", libver="latest") as f:
            if PARTIAL in f:
                del f[PARTIAL]
    except Exception:  # the failure that brought us here is the one to report
        pass


def _commit(path: Path, products: list[_Product]) -> dict[str, float]:
    """Give the finished results their final names: old ones removed, then new ones moved in
    (names before data, groups whole), all in one short session; returns the network maps'
    scales against the linear fit (:func:`_scales_vs_fit`)."""
    try:
        with _open_write(path) as f:
            return _swap(f, products)
    except BaseException:
        _remove_partial(path)
        raise


def _scales_vs_fit(f: h5py.File, products: list[_Product]) -> dict[str, float]:
    """``{family: α}`` of a network's maps against the linear fit computed beside them, read from
    their buffers under :data:`PARTIAL`, one family at a time (bounded memory)."""
    from dwellwise.models.map_metrics import slope

    by_key = {p.key: p for p in products}
    net, fit = by_key.get("maps"), by_key.get("linear_fit")
    if net is None or fit is None:
        return {}
    live = np.asarray(f["entry/data/live_time"][()], dtype=np.float64)
    was_measured = measured(live)  # unmeasured pixels have no rate (NaN maps)
    out = {}
    for i, name in enumerate(net.names):
        if name not in fit.names:
            continue
        reference = np.asarray(f[fit.buffer][fit.names.index(name)], dtype=np.float64)
        mapped = np.asarray(f[net.buffer][i], dtype=np.float64)
        both = was_measured & np.isfinite(reference) & np.isfinite(mapped)
        if float(np.sum(reference[both] * live[both])) < AGREEMENT_MIN_COUNTS:
            continue
        alpha = slope(mapped[both], reference[both])
        if np.isfinite(alpha):
            out[name] = round(alpha, 4)
    return out


def _disagreement_notes(scales: dict[str, float], products: list[_Product]) -> list[str]:
    """A note for each family whose network map falls outside :data:`AGREEMENT` of the fit."""
    lo, hi = AGREEMENT
    apart = {n: a for n, a in scales.items() if not lo <= a <= hi}
    if not apart:
        return []
    label = next(p.predictor.label for p in products if p.key == "maps")
    listed = ", ".join(f"{n} {a:.2f}×" for n, a in apart.items())
    return [
        f"the {label} maps disagree with the linear fit beside them on {listed} (network map = "
        f"α × fit map over the cube): look at both (the fit's are in /{LINEAR_FIT}); networks "
        "tend to shrink faint elements at long dwell, the fit to mix families whose lines overlap"
    ]


def _swap(f: h5py.File, products: list[_Product]) -> dict[str, float]:
    from dwellwise.models.linear_fit import LinearFit, overlaps

    scales = _scales_vs_fit(f, products)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    common = {"created": created, "software": f"dwellwise {dwellwise.__version__}"}
    analysis = f.require_group("entry/analysis")
    keys = {p.key for p in products}
    staged: list[tuple[str, str]] = []  # (partial path, final path)
    for p in products:
        attrs = {
            **common,
            "model": p.predictor.label,
            "kind": p.predictor.kind,
            "names": list(p.names),
            "source": "/entry/data/counts",
        }
        weights = getattr(p.predictor, "provenance", None)
        if weights:  # which trained weights made these maps (file, SHA-256, training command)
            attrs["weights"] = list(weights)
        if isinstance(p.predictor, LinearFit):  # what a spectroscopist should look at twice
            attrs["overlapping_families"] = [
                f"{o.first}~{o.second} (cosine {o.cosine:.2f})" for o in overlaps(p.predictor)
            ]
            attrs["fit_window_kev"] = list(p.predictor.window_kev)
        if p.key == "pigments":
            g = f[PARTIAL].create_group("pigments_group")
            f.move(p.buffer, f"{PARTIAL}/pigments_group/probability")
            g.create_dataset("names", data=_names(p.names))
            g["probability"].attrs.update(attrs, units="probability (0..1)")
            g.attrs.update(common, model=p.predictor.label)
            staged.append((g.name, "/" + PIGMENTS))
        elif p.key == "linear_fit":
            g = f[PARTIAL].create_group("linear_fit_group")
            f.move(p.buffer, f"{PARTIAL}/linear_fit_group/maps")
            g.create_dataset("names", data=_names(p.names))
            g["maps"].attrs.update(attrs, units="counts/s")
            g.attrs.update(common, model=p.predictor.label)
            staged.append((g.name, "/" + LINEAR_FIT))
        else:
            if scales:  # NaN: not compared (no fit of that family, or too few counts)
                attrs["scale_vs_linear_fit"] = [scales.get(n, np.nan) for n in p.names]
            f[p.buffer].attrs.update(attrs, units="counts/s")
            f[PARTIAL].create_dataset("xrf_fit_name", data=_names(p.names))
            staged.append((f"/{PARTIAL}/xrf_fit_name", "/" + XRF_FIT_NAME))
            staged.append((p.buffer, "/" + XRF_FIT))
    f.flush()
    # the swap: delete the old results this run replaces, then move the new ones in
    stale = [final for _, final in staged]
    if "maps" in keys and "linear_fit" not in keys:
        stale.append("/" + LINEAR_FIT)  # a baseline of earlier network maps is no longer beside
    for final in stale:
        if final in f:
            del f[final]
    f.require_group("xrfmap/detsum")
    for src, final in staged:
        f.move(src, final)
    del f[PARTIAL]
    analysis.attrs.update(common, models=[p.key for p in products])
    f.flush()
    return scales


def _names(names: Sequence[str]) -> np.ndarray:
    """Fixed-length ASCII strings, as PyXRF writes and reads ``xrf_fit_name``."""
    return np.array([n.encode("ascii", "replace") for n in names])


# -- pictures ---------------------------------------------------------------------------------
def _save_pngs(path: Path, png_dir: Path, products: list[_Product]) -> list[Path]:
    from dwellwise.plots import save_element_maps, save_pigment_maps

    png_dir.mkdir(exist_ok=True)
    out = []
    with h5py.File(path, "r") as f:
        for p in products:
            if p.key == "maps":
                maps = f[XRF_FIT][()]
                out.append(
                    save_element_maps(
                        maps,
                        p.names,
                        png_dir / f"{path.stem}_elements.png",
                        title=f"{path.stem}: element maps ({p.predictor.label})",
                        unit="counts/s",
                        clip_percentile=99.5,
                    )
                )
            elif p.key == "linear_fit":
                out.append(
                    save_element_maps(
                        f[f"{LINEAR_FIT}/maps"][()],
                        p.names,
                        png_dir / f"{path.stem}_linear_fit.png",
                        title=f"{path.stem}: element maps (linear fit baseline)",
                        unit="counts/s",
                        clip_percentile=99.5,
                    )
                )
            else:
                out.append(
                    save_pigment_maps(
                        f[f"{PIGMENTS}/probability"][()],
                        p.names,
                        png_dir / f"{path.stem}_pigments.png",
                        title=f"{path.stem}: pigment probabilities ({p.predictor.label})",
                    )
                )
    return out
