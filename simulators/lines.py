"""The line library: which X-ray lines each element emits, where, and how strongly (xraylib)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import xraylib

EXCITATION_KEV = 20.216
"""Effective excitation energy: the Rh Kα line of the tube, keV."""

# Radiative transitions into the K, L or M shell from an outer shell (no Coster-Kronig L-L, M-M).
_IUPAC = re.compile(
    r"^(K(?=[LMNOP])|L[1-3](?=[MNOP])|M[1-5](?=[NOP]))(?:L[1-3]|M[1-5]|N[1-7]|O[1-7]|P[1-5])_LINE$"
)
_FAMILY_OF_SHELL = {"K": "K", "L1": "L", "L2": "L", "L3": "L"} | {f"M{i}": "M" for i in range(1, 6)}

FAMILY_Z_RANGE = {"K": (14, 42), "L": (45, 92), "M": (72, 92)}
"""Atomic numbers for which a family is detected in air with a Rh tube (Si K up; L from Rh;
M lines for the heavy elements, e.g. Au M, Hg M, Pb M)."""

MIN_RELATIVE_INTENSITY = 2e-3
"""Lines weaker than this fraction of their family's strongest line are dropped."""


@dataclass(frozen=True)
class Line:
    """One fluorescence line."""

    name: str
    """IUPAC name, e.g. ``KL3`` (Kα1) or ``L3M5`` (Lα1)."""
    energy_kev: float
    """Line energy, keV."""
    cross_section: float
    """Fluorescence production cross-section at the excitation energy, cm²/g
    (``xraylib.CS_FluorLine_Kissel_Cascade``)."""


@dataclass(frozen=True)
class LineGroup:
    """All lines of one element's family (``Fe_K``, ``Pb_L``, ``Pb_M``): one element channel."""

    symbol: str
    """Element symbol."""
    z: int
    """Atomic number."""
    family: str
    """``K``, ``L`` or ``M``."""
    lines: tuple[Line, ...]
    """The lines, strongest first."""

    @property
    def label(self) -> str:
        """Channel name in PyXRF's convention, e.g. ``Fe_K``."""
        return f"{self.symbol}_{self.family}"

    @property
    def main_energy_kev(self) -> float:
        """Energy of the strongest line, keV."""
        return self.lines[0].energy_kev

    @property
    def cross_section(self) -> float:
        """Summed fluorescence cross-section of the family, cm²/g."""
        return sum(line.cross_section for line in self.lines)


@cache
def _line_codes() -> tuple[tuple[str, str, int], ...]:
    """(family, IUPAC name, xraylib macro value) of every line xraylib knows by IUPAC name."""
    codes = []
    for attr in dir(xraylib):
        match = _IUPAC.match(attr)
        if match:
            codes.append((_FAMILY_OF_SHELL[match.group(1)], attr[:-5], getattr(xraylib, attr)))
    return tuple(codes)


@cache
def line_group(label: str, excitation_kev: float = EXCITATION_KEV) -> LineGroup:
    """The lines of one element family, e.g. ``line_group("Pb_L")``.

    Raises ``ValueError`` for an unknown element or a family that is not excited or not
    detected (e.g. ``Sn_K`` below 29 keV excitation).
    """
    symbol, _, family = label.partition("_")
    try:
        z = xraylib.SymbolToAtomicNumber(symbol)
    except ValueError:
        raise ValueError(f"unknown element {symbol!r} in line group {label!r}") from None
    if family not in FAMILY_Z_RANGE:
        raise ValueError(f"line family must be K, L or M, got {label!r}")
    lo, hi = FAMILY_Z_RANGE[family]
    if not lo <= z <= hi:
        raise ValueError(f"{label}: dwellwise detects {family} lines only for Z {lo}..{hi}")
    lines = []
    for fam, name, code in _line_codes():
        if fam != family:
            continue
        try:
            cs = xraylib.CS_FluorLine_Kissel_Cascade(z, code, excitation_kev)
            energy = xraylib.LineEnergy(z, code)
        except ValueError:
            continue
        if cs > 0 and 0 < energy < excitation_kev:
            lines.append(Line(name=name, energy_kev=energy, cross_section=cs))
    if not lines:
        raise ValueError(f"{label}: no line is excited at {excitation_kev} keV")
    strongest = max(line.cross_section for line in lines)
    kept = sorted(
        (ln for ln in lines if ln.cross_section >= MIN_RELATIVE_INTENSITY * strongest),
        key=lambda ln: -ln.cross_section,
    )
    return LineGroup(symbol=symbol, z=z, family=family, lines=tuple(kept))


def groups_for_element(z: int, excitation_kev: float = EXCITATION_KEV) -> list[LineGroup]:
    """Every detectable family of element ``z`` (e.g. Pb -> ``Pb_L``, ``Pb_M``)."""
    symbol = xraylib.AtomicNumberToSymbol(z)
    groups = []
    for family in ("K", "L", "M"):
        try:
            groups.append(line_group(f"{symbol}_{family}", excitation_kev))
        except ValueError:
            continue
    return groups
