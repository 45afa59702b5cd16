"""Which analysis model answers a name: ``maps``, ``pigments`` or ``linear``.

* ``maps``: the shipped elemental-map network (1DCNN+ of paper 002, via
  :func:`dwellwise.models.element_nets.load_map_model`); when no trained weights exist, the
  linear fit (:class:`~dwellwise.models.linear_fit.LinearFit`) answers instead and a note is
  logged.
* ``pigments``: the shipped pigment classifier (paper 004, via
  :func:`dwellwise.models.pigment_net.load_pigment_model`); without weights this is an error
  (:class:`MissingWeights`), since there is no classic stand-in for it.
* ``linear``: the linear fit itself.

The network modules are imported only here and only when asked for (torch models are slow to
import); a module that is not there at all counts as "no trained weights".
"""

from __future__ import annotations

import importlib
import logging

from dwellwise.models.linear_fit import LinearFit
from dwellwise.models.predictor import SpectrumPredictor

log = logging.getLogger(__name__)

MODEL_NAMES = ("maps", "pigments", "linear")
"""Model names ``dwellwise analyze --models`` accepts."""
_LOADERS = {
    "maps": ("dwellwise.models.element_nets", "load_map_model"),
    "pigments": ("dwellwise.models.pigment_net", "load_pigment_model"),
}


class MissingWeights(FileNotFoundError):
    """A model was asked for whose trained weights are not installed."""


def check_model_names(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The names, checked: each one of :data:`MODEL_NAMES`, no repeats, at least one."""
    names = tuple(n.strip() for n in names)
    if not names or any(not n for n in names):
        raise ValueError(f"name at least one model: {', '.join(MODEL_NAMES)}")
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        raise ValueError(
            f"unknown model {', '.join(repr(n) for n in unknown)}; valid names: "
            f"{', '.join(MODEL_NAMES)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"model names repeat: {', '.join(names)}")
    return names


def load_predictor(kind: str, device: str = "auto") -> SpectrumPredictor:
    """The model that answers ``kind`` (one of :data:`MODEL_NAMES`) on ``device``
    (``auto``, ``cpu``, ``cuda``...). ``maps`` falls back to the linear fit without weights;
    ``pigments`` raises :class:`MissingWeights`."""
    check_model_names([kind])
    if kind == "linear":
        return LinearFit(device=device)
    loaded = load_network(kind, device)
    if loaded is not None:
        return loaded
    if kind == "maps":
        log.info("no trained element-map weights installed: the linear fit makes the maps")
        return LinearFit(device=device)
    raise MissingWeights("no pigment weights shipped; run dwellwise train pigments")


def load_network(kind: str, device: str = "auto") -> SpectrumPredictor | None:
    """The shipped network of ``kind`` (``maps`` or ``pigments``), or None when its module or
    its trained weights are not installed."""
    if kind not in _LOADERS:
        raise ValueError(f"no network answers {kind!r}; networks: {', '.join(_LOADERS)}")
    return _load_network(kind, device)


def _load_network(kind: str, device: str) -> SpectrumPredictor | None:
    module_name, function = _LOADERS[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the module is there but needs something missing
            raise
        return None
    try:
        return getattr(module, function)(device=device)
    except FileNotFoundError:
        return None
