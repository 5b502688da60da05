"""Registry of survey layers.

A new layer is one module beside this file plus one line in ``_BUILTIN``.
Tests and deployments may also call :func:`register` with a spec of their own.
"""

from __future__ import annotations

from layers import charging, demolition, grid, parking
from layers.base import LayerSpec

__all__ = [
    "GRID",
    "all_layers",
    "get",
    "register",
    "survey_layers",
    "unregister",
]

_BUILTIN: tuple[LayerSpec, ...] = (
    grid.LAYER,
    demolition.LAYER,
    parking.LAYER,
    charging.LAYER,
)

_REGISTRY: dict[str, LayerSpec] = {spec.name: spec for spec in _BUILTIN}

GRID = "grid"


class UnknownLayer(KeyError):
    pass


def register(spec: LayerSpec) -> LayerSpec:
    """Add ``spec`` to the registry (replacing one of the same name)."""
    if not spec.name.isidentifier() or not spec.name.isascii() or spec.name.startswith("gw_"):
        raise ValueError(f"layer name must be an ASCII identifier not starting with gw_: {spec.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a layer added with :func:`register`."""
    _REGISTRY.pop(name, None)


def get(name: str) -> LayerSpec:
    """The spec registered as ``name``; raises :class:`UnknownLayer`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownLayer(name) from None


def all_layers() -> list[LayerSpec]:
    """All registered layers, the grid first."""
    return list(_REGISTRY.values())


def survey_layers() -> list[LayerSpec]:
    """Registered layers other than the grid, in registry order."""
    return [s for s in _REGISTRY.values() if not s.is_grid]
