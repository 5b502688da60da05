"""The layer registry as the engine sees it: a layer by name, with a user-facing error."""

from __future__ import annotations

import layers
from geo.errors import InputError
from layers.base import LayerSpec

__all__ = ["get_layer", "grid_spec", "layer_name", "layer_names"]


def get_layer(name: str) -> LayerSpec:
    """The registered layer called ``name`` -- its code (``demolition``), its Chinese label
    (``违法建设``) or its English label (``Illegal construction``, in any case); an
    :class:`~geo.errors.InputError` listing the valid names when none or more than one layer is
    called that."""
    try:
        return layers.get(name)
    except KeyError:
        pass
    text = str(name).strip()
    found = [
        s
        for s in layers.all_layers()
        if text in (s.name, s.label_zh) or text.casefold() == s.label_en.casefold()
    ]
    if len(found) == 1:
        return found[0]
    known = "; ".join(f"{s.name} ({s.label_zh} / {s.label_en})" for s in layers.all_layers())
    if found:
        raise InputError(
            f"图层名称不唯一: {text}（可选: {known}）",
            f"ambiguous layer: {text} (valid: {known})",
            code="ambiguous_layer",
        )
    raise InputError(
        f"未知图层: {name}（可选: {known}）",
        f"unknown layer: {name} (known: {known})",
        code="unknown_layer",
    )


def layer_name(name: str) -> str:
    """The code of the layer ``name`` names (see :func:`get_layer`)."""
    return get_layer(name).name


def layer_names(names: list[str] | None) -> list[str] | None:
    """:func:`layer_name` of each of ``names`` (None stays None)."""
    return None if names is None else [layer_name(n) for n in names]


def grid_spec() -> LayerSpec:
    """The registered unit-grid layer."""
    for s in layers.all_layers():
        if s.is_grid:
            return s
    raise RuntimeError("no grid layer registered")
