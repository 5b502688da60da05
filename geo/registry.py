"""The layer registry as the engine sees it: a layer by name, with a user-facing error."""

from __future__ import annotations

import layers
from geo.errors import InputError
from layers.base import LayerSpec

__all__ = ["get_layer", "grid_spec"]


def get_layer(name: str) -> LayerSpec:
    """The registered layer called ``name``; an :class:`~geo.errors.InputError` naming the known
    layers when there is none."""
    try:
        return layers.get(name)
    except KeyError:
        known = ", ".join(s.name for s in layers.all_layers())
        raise InputError(
            f"未知图层: {name}（可选: {known}）",
            f"unknown layer: {name} (known: {known})",
            code="unknown_layer",
        ) from None


def grid_spec() -> LayerSpec:
    """The registered unit-grid layer."""
    for s in layers.all_layers():
        if s.is_grid:
            return s
    raise RuntimeError("no grid layer registered")
