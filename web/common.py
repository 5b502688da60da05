"""Request helpers shared by the pages and the JSON API."""

from __future__ import annotations

from typing import Any

from flask import request

import layers
from geo.errors import InputError
from geo.importer import get_layer
from geo.tally import check_level
from layers import LayerSpec


def current_store() -> Any:
    """The store of this request (see :func:`server.get_store`)."""
    from server import get_store

    return get_store()


def query_args() -> tuple[str, list[str] | None, str | None]:
    """``level``, ``layer`` (as a list or None) and ``as_of`` from the query string, checked."""
    level = check_level(request.args.get("level", "grid"))
    layer = request.args.get("layer") or None
    return level, [layer] if layer else None, request.args.get("as_of") or None


def survey_spec(layer_names: list[str] | None) -> LayerSpec:
    """The survey layer asked for (the first one when none is), a clear 400 otherwise."""
    spec = get_layer(layer_names[0]) if layer_names else layers.survey_layers()[0]
    if spec.is_grid:
        raise InputError("请选择调查图层", "choose a survey layer", code="bad_layer")
    return spec
