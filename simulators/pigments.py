"""The pigment database shipped with dwellwise (``data/pigments.json``)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np
import xraylib
from pydantic import BaseModel, Field, field_validator


class Pigment(BaseModel, frozen=True):
    """One pigment of the database."""

    key: str
    """Identifier, e.g. ``lead_white``."""
    name: str
    """Name as a conservator writes it."""
    formula: str
    """Chemical formula parsed by ``xraylib.CompoundParser``."""
    rgb: tuple[int, int, int]
    """Typical sRGB colour of the paint, 0-255."""
    density: float = Field(gt=0)
    """Density of the pure pigment, g/cm³."""
    papers: list[str]
    """Source papers (``004``: Xu et al. Table 1; ``003``: ganX)."""
    aliases: list[str]
    """Other keys that name the same pigment."""
    role: list[str]
    """Where scenes may use it: ``top``, ``hidden``, ``ground``."""
    notes: str
    """What a conservator should know about it."""

    @field_validator("formula")
    @classmethod
    def _parses(cls, formula: str) -> str:
        try:
            xraylib.CompoundParser(formula)
        except ValueError as exc:
            raise ValueError(f"xraylib cannot parse formula {formula!r}: {exc}") from exc
        return formula

    def mass_fractions(self) -> dict[int, float]:
        """Element mass fractions by atomic number, from the formula (xraylib)."""
        return _mass_fractions(self.formula)


class Binder(BaseModel, frozen=True):
    """The paint medium mixed with every pigment."""

    name: str
    """Name of the medium."""
    formula: str
    """Chemical formula (xraylib)."""
    density: float = Field(gt=0)
    """Density, g/cm³."""
    mass_fraction: float = Field(ge=0, lt=1)
    """Mass fraction of binder in the dry paint."""
    notes: str
    """Source of the choice."""


@cache
def _mass_fractions(formula: str) -> dict[int, float]:
    parsed = xraylib.CompoundParser(formula)
    return dict(zip(parsed["Elements"], parsed["massFractions"], strict=True))


@cache
def _load() -> tuple[dict[str, Pigment], Binder]:
    text = resources.files("dwellwise.simulators").joinpath("data/pigments.json").read_text()
    raw = json.loads(text)
    pigments = {p["key"]: Pigment(**p) for p in raw["pigments"]}
    return pigments, Binder(**raw["binder"])


def pigment_database() -> dict[str, Pigment]:
    """All pigments by key."""
    return dict(_load()[0])


def binder() -> Binder:
    """The binder every paint layer contains."""
    return _load()[1]


def get_pigment(key: str) -> Pigment:
    """A pigment by key or alias, with an error listing the valid keys."""
    db = pigment_database()
    if key in db:
        return db[key]
    for pigment in db.values():
        if key in pigment.aliases:
            return pigment
    raise ValueError(f"unknown pigment {key!r}; known pigments: {', '.join(sorted(db))}")


def pigments_with_role(role: str) -> list[Pigment]:
    """Pigments that scenes may use in a given role (``top``, ``hidden``, ``ground``)."""
    return [p for p in pigment_database().values() if role in p.role]


def rgb_array(pigments: list[Pigment]) -> np.ndarray:
    """``(P, 3)`` float colours in 0..1."""
    return np.array([p.rgb for p in pigments], dtype=float) / 255.0
