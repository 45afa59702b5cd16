"""The classic baseline: a non-negative linear fit of every pixel's spectrum.

Each spectrum ``x`` (counts per channel) inside the fit window is modelled as

    x ≈ Σ_c a_c · element_basis[c] + Σ_s b_s · scatter[s] + Σ_k d_k · P_k(E)

with the unit-area spectrum of each element family of the line library (all its lines at their
unattenuated ratios, escape peaks included: :attr:`SpectrumModel.element_basis`), the Rayleigh,
Compton and scattered-continuum shapes of the tube (:attr:`SpectrumModel.basis`), and a smooth
background of a few Legendre polynomials over the window. Element and scatter amplitudes are
constrained ``>= 0``; the background is free. Because every basis row has unit area, ``a_c`` is
the number of photons of that family the detector recorded, and ``a_c / live_time`` is its rate
in counts/s, the unit of ``Scene.rates`` and of the simulator's truth.

Speed: everything that does not depend on the data is computed once. The background is
eliminated by projecting it out, so a spectrum enters only through one matrix product
``h = x @ M`` (``(N, E_window) @ (E_window, J)``, J = families + 3 scatter shapes), and the
non-negative problem ``min ½ aᵀG a − hᵀa, a >= 0`` is solved in the small J-space by the
Lawson-Hanson active-set method, vectorised over pixels: a few accelerated projected-gradient
steps from the clamped unconstrained solution guess each pixel's support, then each iteration
solves every pixel's normal equations restricted to its passive set (one inverse per distinct
set when sets repeat, else a batched Cholesky per pixel) and checks the gradient. Most pixels
are done after one exact solve; the result is the exact NNLS optimum (tests compare it with
``scipy.optimize.nnls``).

Which families: by default every family of the line library inside the fit range
(:func:`library_families`); :meth:`LinearFit.for_spectrum` narrows that to the families a
cube's sum spectrum shows (:func:`detect_families`) plus chosen ones (the 12 targets of paper
002) and weights channels by the inverse mean spectrum, as a spectroscopist would set up PyMca.

Overlapping families (As K / Pb L, S K / Pb M / Hg M, Ba L / Ti K...) are separated by their
whole line pattern, never by one window: As Kβ (11.73 keV) against Pb Lβ (12.61 keV) and
Pb Ll, Lγ; S Kα/Kβ against the Pb M and Hg M line patterns. Where two patterns are nearly the
same (S K under Pb M at 145 eV resolution), the non-negative fit cannot create signal that the
data does not support, but the weaker family's map is correspondingly noisy: :func:`overlaps`
lists the pairs whose basis rows are nearly collinear inside the window, so a report can say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import torch
from dwellwise.simulators.energy import EnergyAxis
from dwellwise.simulators.lines import groups_for_element, line_group
from dwellwise.simulators.spectra import SCATTER_COMPONENTS, SpectrumModel

FIT_WINDOW_KEV = (1.0, 21.0)
"""Energies fitted, keV: below 1 keV the SDD in air records little; above 21 keV there is only
tube scatter (Rh Kβ Rayleigh at 22.7 keV). The Compton and Rh Kα Rayleigh peaks are inside."""
BACKGROUND_TERMS = 4
"""Legendre polynomials (degree 0..3) of the free smooth background over the fit window."""
PAPER_002_TARGETS = (
    "S_K",
    "K_K",
    "Ca_K",
    "Cr_K",
    "Mn_K",
    "Fe_K",
    "Cu_K",
    "Zn_K",
    "Sr_K",
    "Au_L",
    "Hg_L",
    "Pb_L",
)
"""The 12 element maps of paper 002 (K lines of S…Sr, L lines of Au, Hg, Pb)."""
EXCLUDED_Z = frozenset({36, 54, 61, 84, 85, 86, 87, 88, 89, 91})
"""Elements not offered by default: Kr and Xe (noble gases absent from paint and air in any
amount a detector sees), and the short-lived radioactive Pm, Po, At, Rn, Fr, Ra, Ac, Pa."""
MAX_ITERATIONS_PER_COLUMN = 3
"""The active-set loop stops after this many iterations per fitted column at the latest."""
CPU_THREADS: int | None = 1
"""Default torch CPU threads of a fit (None: torch's setting). One thread already fits ~6-10x
faster than PyMca's FastXRFLinearFit; more threads gain ~1.5x on an idle machine (2 of 16
cores) but collapse (5-10x slower) when other processes share the cores, as on a daemon host
(``benchmarks/RESULTS.md``, analysis-speed)."""
WARM_ITERATIONS = 8
"""Projected-gradient steps that guess each row's support before the exact active-set loop."""
PROJECT_BLOCK_ROWS = 512
"""Spectra converted to float32 and projected at a time on a CPU (a block stays in cache)."""
SOLVE_BLOCK_ROWS = 1024
"""Rows whose restricted normal matrices are built and factorised at a time."""
DETECTION_RATIO_SCALES = (0.15, 2.5)
"""When families are detected, the weaker lines of each may scale by this range against its
strongest line (two columns per family, the cone between them)."""
RIDGE = 1e-9
"""Relative ridge added to each restricted normal matrix (unit-norm columns), for stability."""
COLLINEAR_COSINE = 0.6
"""Two families whose window spectra have a cosine above this are reported by :func:`overlaps`."""


@cache
def library_families(window_kev: tuple[float, float] = FIT_WINDOW_KEV) -> tuple[str, ...]:
    """Every element family of the line library whose strongest line lies inside the window
    (K lines of Si…Mo, L lines of Rh…U, M lines of Hf…U), less :data:`EXCLUDED_Z`; ordered by
    atomic number, then K, L, M. These are the default candidates of the fit."""
    lo, hi = window_kev
    out = []
    for z in range(1, 100):
        if z in EXCLUDED_Z:
            continue
        for group in groups_for_element(z):
            if lo <= group.main_energy_kev <= hi:
                out.append(group.label)
    return tuple(out)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as torch spells it."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


@dataclass(frozen=True)
class Overlap:
    """Two fitted families whose spectra inside the fit window are nearly collinear."""

    first: str
    """Family label, e.g. ``S_K``."""
    second: str
    """Family label, e.g. ``Pb_M``."""
    cosine: float
    """Cosine of the angle between their window spectra (1 = indistinguishable)."""


class LinearFit:
    """Non-negative linear fit of spectra on the line library (a ``SpectrumPredictor``).

    ``elements``: the family labels to fit (``Fe_K``, ``Pb_L``, ``Pb_M``...); default all of
    :func:`library_families`. ``weights``: optional per-channel weights on ``axis`` (e.g.
    ``1 / mean spectrum``, see :meth:`for_spectrum`); default unweighted least squares.
    ``background_terms``: number of free Legendre polynomials (0: no background).
    """

    kind = "maps"
    label = "linear fit"

    def __init__(
        self,
        axis: EnergyAxis | None = None,
        elements: Sequence[str] | None = None,
        *,
        device: str | torch.device = "auto",
        window_kev: tuple[float, float] = FIT_WINDOW_KEV,
        background_terms: int = BACKGROUND_TERMS,
        weights: np.ndarray | None = None,
        threads: int | None = CPU_THREADS,
    ) -> None:
        self.axis = axis or EnergyAxis()
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1 (or None), got {threads}")
        self.threads = threads
        """CPU threads torch uses while this fit runs (None: torch's own setting)."""
        lo_kev, hi_kev = (float(v) for v in window_kev)
        if not hi_kev > lo_kev:
            raise ValueError(
                f"fit window must be (low, high) keV with low < high, got {window_kev}"
            )
        self.window_kev = (lo_kev, hi_kev)
        names = tuple(library_families(self.window_kev) if elements is None else elements)
        if not names:
            raise ValueError("the linear fit needs at least one element family")
        if len(set(names)) != len(names):
            raise ValueError(f"element families must be unique, got {list(names)}")
        if background_terms < 0:
            raise ValueError(f"background_terms must be >= 0, got {background_terms}")
        self.names: tuple[str, ...] = names
        self.background_terms = int(background_terms)
        self.device = resolve_device(device)
        self._window = _window_slice(self.axis, self.window_kev)
        model = _spectrum_model(names, self.axis)  # raises ValueError for unknown families
        self.model = model
        scatter = model.basis[model.group_of_component < 0]
        basis = np.vstack([model.element_basis, scatter])[:, self._window].T  # (E_w, J)
        if weights is None:
            w = np.ones(basis.shape[0])
        else:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (self.axis.channels,):
                raise ValueError(
                    f"weights must be one per channel ({self.axis.channels}), got {weights.shape}"
                )
            if not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ValueError("weights must be finite and >= 0")
            w = weights[self._window]
        self.weights = w
        self._precompute(basis, w)

    # -- set-up ------------------------------------------------------------------------------
    def _precompute(self, basis: np.ndarray, w: np.ndarray) -> None:
        sw = np.sqrt(w)
        a, _ = _without_background(sw[:, None] * basis, sw, self.background_terms)
        sw = sw[:, None]
        norms = np.linalg.norm(a, axis=0)
        dead = norms <= 1e-12 * max(norms.max(), 1e-300)
        if np.any(dead):
            labels = [*self.names, *SCATTER_COMPONENTS]
            bad = [labels[j] for j in np.flatnonzero(dead)]
            raise ValueError(
                f"no signal inside the fit window {self.window_kev} keV for: {', '.join(bad)}"
            )
        a_unit = a / norms
        gram = a_unit.T @ a_unit
        self._gram64 = torch.as_tensor(gram, dtype=torch.float64, device=self.device)
        self._gram = self._gram64.to(torch.float32)
        self._ridged_diagonal = torch.diagonal(self._gram64) * (1.0 + RIDGE)
        self._inverse = torch.linalg.inv(
            self._gram64 + RIDGE * torch.eye(len(gram), dtype=torch.float64, device=self.device)
        ).to(torch.float32)
        self._inv_lipschitz = float(1.0 / np.linalg.eigvalsh(gram).max())
        projector = (sw * a_unit).astype(np.float32)  # h = x_window @ projector
        self._projector = torch.as_tensor(projector, device=self.device)
        self._inv_scale = torch.as_tensor(1.0 / norms, dtype=torch.float32, device=self.device)

    # -- variants ----------------------------------------------------------------------------
    def subset(self, names: Sequence[str]) -> LinearFit:
        """The same fit (axis, window, weights, background, device) on other families."""
        weights = None
        if not np.all(self.weights == 1.0):
            weights = np.zeros(self.axis.channels)
            weights[self._window] = self.weights
        return LinearFit(
            self.axis,
            names,
            device=self.device,
            window_kev=self.window_kev,
            background_terms=self.background_terms,
            weights=weights,
            threads=self.threads,
        )

    @classmethod
    def for_spectrum(
        cls,
        sum_spectrum: np.ndarray,
        axis: EnergyAxis | None = None,
        *,
        always: Sequence[str] = PAPER_002_TARGETS,
        candidates: Sequence[str] | None = None,
        device: str | torch.device = "auto",
        window_kev: tuple[float, float] = FIT_WINDOW_KEV,
        background_terms: int = BACKGROUND_TERMS,
        min_significance: float = 5.0,
        systematic: float = 0.02,
        threads: int | None = CPU_THREADS,
    ) -> LinearFit:
        """A fit adapted to one cube, the way a spectroscopist starts: fit the cube's sum
        spectrum (counts) on all ``candidates`` (default every library family), keep the
        families detected there (see :func:`detect_families`) plus ``always`` (e.g. the 12
        targets of paper 002), and weight channels by the inverse sum spectrum (the Poisson
        variance of an average pixel, up to a constant)."""
        axis = axis or EnergyAxis()
        sum_spectrum = np.asarray(sum_spectrum, dtype=np.float64)
        if sum_spectrum.shape != (axis.channels,):
            raise ValueError(
                f"sum spectrum has shape {sum_spectrum.shape}, the calibration {axis.channels}"
            )
        detected = detect_families(
            sum_spectrum,
            axis,
            candidates=candidates,
            window_kev=window_kev,
            background_terms=background_terms,
            min_significance=min_significance,
            systematic=systematic,
        )
        order = library_families(window_kev)
        lo = max(window_kev[0], axis.edges[0])
        hi = min(window_kev[1], axis.edges[-1])
        valid_always = [a for a in always if _in_range(a, lo, hi)]
        chosen = set(detected) | set(valid_always)
        names = [f for f in order if f in chosen] + sorted(chosen - set(order))
        return cls(
            axis,
            names,
            device=device,
            window_kev=window_kev,
            background_terms=background_terms,
            weights=poisson_weights(sum_spectrum),
            threads=threads,
        )

    # -- fitting -----------------------------------------------------------------------------
    def fit_counts(self, counts: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Fitted amplitudes ``(N, J)`` float32 counts (families, then Rayleigh, Compton,
        continuum) of spectra ``(N, E)`` on ``self.axis``, on ``self.device``."""
        with _torch_threads(self.threads if self.device.type == "cpu" else None):
            return self._nnls(self.project(counts)) * self._inv_scale

    def project(self, counts: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``h = x_window @ M`` ``(N, J)`` float32 on ``self.device``: the only pass over the
        channels. On a CPU the spectra are converted in blocks that stay in cache."""
        x = counts if torch.is_tensor(counts) else torch.from_numpy(_torch_compatible(counts))
        if x.ndim != 2 or x.shape[1] != self.axis.channels:
            raise ValueError(
                f"spectra must be (N, {self.axis.channels}) on the fit's calibration, "
                f"got {tuple(x.shape)}"
            )
        window = x[:, self._window]
        if self.device.type != "cpu":
            if window.dtype == torch.uint32:  # int32 is what every backend converts
                window = window.contiguous().view(torch.int32)
            return window.to(self.device, non_blocking=True).to(torch.float32) @ self._projector
        out = torch.empty((x.shape[0], self._projector.shape[1]), dtype=torch.float32)
        for s in range(0, x.shape[0], PROJECT_BLOCK_ROWS):
            block = window[s : s + PROJECT_BLOCK_ROWS].to(torch.float32)
            torch.matmul(block, self._projector, out=out[s : s + PROJECT_BLOCK_ROWS])
        return out

    def predict(self, counts: np.ndarray, live_time: np.ndarray) -> np.ndarray:
        """Rates ``(N, len(names))`` float32, counts/s, of spectra ``(N, E)`` with live times
        ``(N,)`` seconds; a pixel with no live time (never measured) gets 0."""
        counts = np.asarray(counts)
        live = np.asarray(live_time, dtype=np.float64).reshape(-1)
        if live.shape[0] != counts.shape[0]:
            raise ValueError(f"{counts.shape[0]} spectra but {live.shape[0]} live times")
        amplitudes = self.fit_counts(counts)[:, : len(self.names)]
        live_t = torch.as_tensor(live, dtype=torch.float32, device=self.device)
        safe = torch.where(live_t > 0, live_t, torch.ones_like(live_t))
        rates = torch.where(live_t[:, None] > 0, amplitudes / safe[:, None], 0.0)
        return rates.cpu().numpy()

    def _nnls(self, h: torch.Tensor) -> torch.Tensor:
        """Solve ``min ½ aᵀGa − hᵀa, a >= 0`` for every row of ``h`` (Lawson-Hanson, batched).

        A few projected-gradient steps from the clamped unconstrained solution first guess
        each row's support; the active-set loop then starts from that feasible point, so most
        rows need one exact solve on their passive set and a gradient check."""
        n, j = h.shape
        out = torch.zeros_like(h)
        if n == 0:
            return out
        tol = 1e-5 * torch.clamp(h.abs().amax(dim=1), min=1.0)
        a = self._warm_start(h)
        active = torch.arange(n, device=h.device)
        passive = a > 0
        added = torch.full((n,), -1, dtype=torch.long, device=h.device)
        for _ in range(MAX_ITERATIONS_PER_COLUMN * j):
            if active.numel() == 0:
                break
            hh, pp, aa = h[active], passive, a
            z = self._solve(pp, hh)
            bad = pp & (z <= 0)
            # a variable just added that comes out non-positive at once is rounding noise at
            # the optimum: the row has converged (Lawson-Hanson's guard against cycling)
            just = torch.zeros_like(bad)
            has = torch.nonzero(added >= 0).squeeze(1)
            just[has, added[has]] = True
            stall = bad.any(dim=1) & ~(bad & ~just).any(dim=1)
            bad = bad & ~stall[:, None]
            infeasible = bad.any(dim=1)
            new_a = z
            if infeasible.any():
                # step from the feasible a towards z until the first passive value reaches 0;
                # the limiting variable(s) leave the passive set
                ratio = torch.where(bad, aa / torch.clamp(aa - z, min=1e-30), 2.0)
                alpha = torch.clamp(ratio.amin(dim=1, keepdim=True), 0.0, 1.0)
                stepped = aa + alpha * (z - aa)
                leave = bad & ((ratio <= alpha * (1 + 1e-6) + 1e-12) | (stepped <= 0))
                leave &= infeasible[:, None]
                new_a = torch.where(infeasible[:, None], stepped, z)
                new_a = torch.where(leave, 0.0, new_a)
                pp = pp & ~leave
            new_a = torch.clamp(new_a, min=0.0)
            new_a = torch.where(stall[:, None], aa, new_a)
            # feasible rows: add the variable with the largest positive gradient, or stop
            grad = torch.where(pp, -1.0, hh - new_a @ self._gram)
            best, best_j = grad.max(dim=1)
            grow = ~infeasible & ~stall & (best > tol[active])
            converged = ~infeasible & ~grow
            if grow.any():
                rows = torch.nonzero(grow).squeeze(1)
                pp = pp.clone()
                pp[rows, best_j[rows]] = True
            added = torch.where(grow, best_j, -1)
            done = torch.nonzero(converged).squeeze(1)
            out[active[done]] = new_a[done]
            keep = torch.nonzero(~converged).squeeze(1)
            active, passive, a, added = active[keep], pp[keep], new_a[keep], added[keep]
        if active.numel():  # iteration cap: the last feasible iterate
            out[active] = a
        return out

    def _warm_start(self, h: torch.Tensor) -> torch.Tensor:
        """A feasible starting point: the clamped unconstrained solution improved by
        :data:`WARM_ITERATIONS` accelerated projected-gradient steps (FISTA)."""
        a = torch.clamp(h @ self._inverse, min=0.0)
        y, prev, t = a, a, 1.0
        step = self._inv_lipschitz
        for _ in range(WARM_ITERATIONS):
            a = torch.clamp(y - (y @ self._gram - h) * step, min=0.0)
            t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
            y = a + ((t - 1.0) / t_next) * (a - prev)
            prev, t = a, t_next
        return a

    def _solve(self, passive: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Unconstrained solution on each row's passive set (zero elsewhere). Rows that share a
        passive set share one inverse when sets repeat; otherwise each row gets a Cholesky
        solve of its restricted normal matrix."""
        n, j = passive.shape
        if n == 0:
            return torch.zeros_like(h)
        bits = torch.arange(j, device=h.device)
        if j <= 62:
            keys = (passive.long() << bits).sum(dim=1)
            uniq, inverse = torch.unique(keys, return_inverse=True)
            masks = ((uniq[:, None] >> bits) & 1).bool()
        else:
            masks, inverse = torch.unique(passive, dim=0, return_inverse=True)
        if masks.shape[0] * 4 > n:  # mostly distinct sets: solve row by row
            return self._restricted_solve(passive, h.to(torch.float64)).to(h.dtype)
        inv = self._restricted_inverse(masks).to(h.dtype)
        if inv.shape[0] == 1:
            return h @ inv[0].T
        out = torch.empty_like(h)
        step = max(1, (1 << 22) // (j * j))  # bound the gathered (rows, J, J) block
        for s in range(0, n, step):
            block = inv[inverse[s : s + step]]
            out[s : s + step] = torch.bmm(block, h[s : s + step, :, None]).squeeze(2)
        return out

    def _restricted_matrices(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``G`` restricted to each mask's set (identity elsewhere, a tiny ridge inside),
        float64, and the masks' outer products (bool)."""
        outer = masks[:, :, None] & masks[:, None, :]
        g = torch.where(outer, self._gram64, 0.0)
        g.diagonal(dim1=1, dim2=2).copy_(torch.where(masks, self._ridged_diagonal, 1.0))
        return g, outer

    def _restricted_inverse(self, masks: torch.Tensor) -> torch.Tensor:
        g, outer = self._restricted_matrices(masks)
        return torch.where(outer, torch.linalg.inv(g), 0.0)

    def _restricted_solve(self, passive: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Row-by-row Cholesky solves of ``G`` restricted to each row's passive set, float64,
        in blocks that stay in cache."""
        out = torch.empty_like(h)
        for s in range(0, h.shape[0], SOLVE_BLOCK_ROWS):
            p = passive[s : s + SOLVE_BLOCK_ROWS]
            g, _ = self._restricted_matrices(p)
            rhs = (h[s : s + SOLVE_BLOCK_ROWS] * p)[:, :, None]
            chol, info = torch.linalg.cholesky_ex(g)
            z = torch.cholesky_solve(rhs, chol)
            failed = torch.nonzero(info != 0).squeeze(1)
            if failed.numel():  # numerically singular: least-squares solution instead
                z[failed] = torch.linalg.lstsq(g[failed], rhs[failed]).solution
            out[s : s + SOLVE_BLOCK_ROWS] = z.squeeze(2) * p
        return out


@contextmanager
def _torch_threads(threads: int | None):
    """Run with ``threads`` torch CPU threads, restoring the setting afterwards."""
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _torch_compatible(counts: np.ndarray) -> np.ndarray:
    """An array torch can wrap without copying: native byte order, a dtype torch knows."""
    counts = np.asarray(counts)
    if counts.dtype.kind == "f":
        return counts if counts.dtype in (np.float32, np.float64) else counts.astype(np.float32)
    if counts.dtype in (np.uint8, np.int16, np.int32, np.int64, np.uint32, np.uint16):
        return counts if counts.dtype.isnative else counts.astype(counts.dtype.newbyteorder("="))
    return counts.astype(np.float32)


def _in_range(label: str, lo_kev: float, hi_kev: float) -> bool:
    try:
        group = line_group(label)
    except ValueError:
        return False
    return lo_kev <= group.main_energy_kev <= hi_kev


def poisson_weights(spectrum: np.ndarray, floor_counts: float = 1.0) -> np.ndarray:
    """Per-channel weights ``1 / max(spectrum, floor_counts)`` for Poisson data whose expected
    spectrum is proportional to ``spectrum`` (e.g. a cube's sum spectrum, in counts): the
    floor keeps channels with no counts from dominating."""
    spectrum = np.asarray(spectrum, dtype=np.float64)
    return 1.0 / np.maximum(spectrum, float(floor_counts))


def detect_families(
    sum_spectrum: np.ndarray,
    axis: EnergyAxis,
    *,
    candidates: Sequence[str] | None = None,
    window_kev: tuple[float, float] = FIT_WINDOW_KEV,
    background_terms: int = BACKGROUND_TERMS,
    min_significance: float = 5.0,
    systematic: float = 0.02,
) -> list[str]:
    """Families present in a (sum) spectrum, the way a spectroscopist picks them.

    The spectrum is fitted (exact NNLS, Poisson weights) on all ``candidates`` (default every
    library family), each family allowed to shift its line ratios inside
    :data:`DETECTION_RATIO_SCALES` (the lines of a buried layer are attenuated unevenly, and at
    the statistics of a whole cube a fixed ratio would leave residuals that a spurious
    neighbour fills). A family is kept when its fitted counts inside its main peak (± 1 FWHM)
    exceed ``min_significance`` standard deviations of everything the fit puts there, the
    variance being Poisson plus a ``systematic`` relative model error."""
    from scipy.optimize import nnls

    names = tuple(library_families(window_kev) if candidates is None else candidates)
    if np.shape(sum_spectrum) != (axis.channels,):
        raise ValueError(
            f"sum spectrum has shape {np.shape(sum_spectrum)}, the calibration {axis.channels}"
        )
    window = _window_slice(axis, window_kev)
    basis, owner_arr, roi = _detection_design(axis, tuple(window_kev), names)
    spectrum = np.maximum(np.asarray(sum_spectrum, dtype=np.float64), 0.0)
    sw = np.sqrt(poisson_weights(spectrum)[window])
    a, q = _without_background(sw[:, None] * basis, sw, background_terms)
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    xw = sw * spectrum[window]
    if q is not None:
        xw = xw - q @ (q.T @ xw)
    solution, _ = nnls(a / norms, xw, maxiter=50 * a.shape[1])
    amplitudes = solution / norms
    fitted = basis * amplitudes[None, :]
    total = fitted.sum(axis=1)
    if q is not None:  # the background the fit implies, in counts
        total = total + (q @ (q.T @ (xw - (a / norms) @ solution))) / sw
    found = []
    for c, name in enumerate(names):
        mine = owner_arr == c
        lo = max(int(roi[c, 0]) - window.start, 0)
        hi = min(int(roi[c, 1]) - window.start + 1, basis.shape[0])
        if hi <= lo or not np.any(amplitudes[mine] > 0):
            continue
        signal = float(fitted[lo:hi][:, mine].sum())
        everything = float(max(total[lo:hi].sum(), signal))
        sigma = np.sqrt(everything + (systematic * everything) ** 2)
        if signal >= min_significance * sigma:
            found.append(name)
    return found


@lru_cache(maxsize=4)
def _detection_design(
    axis: EnergyAxis, window_kev: tuple[float, float], names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns of the detection fit inside the window ``(E_w, J')`` (two line-ratio variants
    per multi-line family, then the scatter shapes), the family of each column (-1: scatter)
    and each family's ROI channels; cached, since a daemon analyses cube after cube."""
    model = SpectrumModel(names, axis=axis)
    columns, owner = [], []
    for c in range(len(names)):
        members = np.flatnonzero(model.group_of_component == c)
        weights = np.array([model.components[k].weight for k in members])
        rows = model.basis[members]
        variants = [weights] if len(members) == 1 else []
        for scale in DETECTION_RATIO_SCALES if len(members) > 1 else ():
            varied = weights * scale
            main = int(np.argmax(weights))
            varied[main] = weights[main]
            variants.append(varied / varied.sum())
        for v in variants:
            columns.append(v @ rows)
            owner.append(c)
    for row in model.basis[model.group_of_component < 0]:
        columns.append(row)
        owner.append(-1)
    window = _window_slice(axis, window_kev)
    basis = np.ascontiguousarray(np.asarray(columns)[:, window].T)
    owner_arr, roi = np.array(owner), model.roi_windows.copy()
    for array in (basis, owner_arr, roi):
        array.flags.writeable = False  # shared by every call through the cache
    return basis, owner_arr, roi


@lru_cache(maxsize=8)
def _spectrum_model(names: tuple[str, ...], axis: EnergyAxis) -> SpectrumModel:
    """The line-library model of these families (cached: building it costs xraylib calls)."""
    return SpectrumModel(names, axis=axis)


def _window_slice(axis: EnergyAxis, window_kev: tuple[float, float]) -> slice:
    centers = axis.centers
    inside = np.flatnonzero((centers >= window_kev[0]) & (centers <= window_kev[1]))
    if inside.size < 8:
        raise ValueError(
            f"the fit window {window_kev[0]:g}..{window_kev[1]:g} keV holds {inside.size} "
            f"channels of the calibration ({centers[0]:.3f}..{centers[-1]:.3f} keV); need 8"
        )
    return slice(int(inside[0]), int(inside[-1]) + 1)


def _without_background(
    a: np.ndarray, sw: np.ndarray, terms: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Weighted columns ``a`` ``(E_w, J)`` with the span of ``terms`` Legendre polynomials
    over the window (weighted alike by ``sw``) projected out, and an orthonormal basis ``q``
    of that span (None without background)."""
    if terms == 0:
        return a, None
    x = np.linspace(-1.0, 1.0, a.shape[0])
    q, _ = np.linalg.qr(sw[:, None] * np.polynomial.legendre.legvander(x, terms - 1))
    return a - q @ (q.T @ a), q


def overlaps(fit: LinearFit, cosine: float = COLLINEAR_COSINE) -> list[Overlap]:
    """Pairs of fitted families that are nearly collinear in the fit (cosine above
    ``cosine`` between their background-free, weighted window spectra)."""
    gram = fit._gram64.cpu().numpy()
    out = []
    c = len(fit.names)
    for i in range(c):
        for k in range(i + 1, c):
            if gram[i, k] > cosine:
                out.append(Overlap(fit.names[i], fit.names[k], float(gram[i, k])))
    return out
