"""Request helpers shared by the pages and the JSON API."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app, request
from werkzeug.routing import IntegerConverter

import layers
from geo.errors import InputError
from geo.figures.hierarchy import check_level
from geo.figures.versions import parse_grid
from geo.reading.values import parse_date
from geo.registry import get_layer, layer_name
from geo.store import clock
from layers.base import LayerSpec

#: Largest id a route takes: row ids are SQLite integers (signed 64-bit).
MAX_ID = 2**63 - 1


class IdConverter(IntegerConverter):
    """``<id:name>``: a row id, 1 to 2⁶³−1; anything else matches no route (404)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **{"min": 1, "max": MAX_ID, **kwargs})


def register_converters(state: Any) -> None:
    """Blueprint set-up: the route converters of gridwatch (``bp.record_once(register_converters)``,
    before the blueprint's first route)."""
    state.app.url_map.converters.setdefault("id", IdConverter)


def query_args() -> tuple[str, list[str] | None, date | None]:
    """``level``, ``layer`` (as a list or None) and ``as_of`` (parsed) from the query string, checked."""
    level = check_level(request.args.get("level"))  # none: the unit grid
    layer = request.args.get("layer") or None  # its code, Chinese or English name
    return level, [layer_name(layer)] if layer else None, as_of_arg()


def as_of_arg() -> date | None:
    """``?as_of=`` parsed once (``2022-05-25``, ``20220525``, ``2022年5月25日`` ...); a bad date is a 400."""
    return parse_date(request.args.get("as_of"))


def timezone() -> str:
    """The configured time zone (``GRIDWATCH_TIMEZONE``)."""
    return str(current_app.config.get("GRIDWATCH_TIMEZONE") or clock.DEFAULT_ZONE)


def known_at_arg() -> str | None:
    """``?known_at=`` as a store stamp (an ISO 8601 time, in the configured zone when it names
    none; a bare date is the end of that day); a bad one is a 400 ``bad_known_at``."""
    return clock.parse_known_at(request.args.get("known_at"), timezone())


def grid_arg() -> str | int | None:
    """``?grid=``: ``current`` or a grid version id; a bad one is a 400 ``bad_grid``."""
    return parse_grid(request.args.get("grid"))


def survey_spec(layer_names: list[str] | None) -> LayerSpec:
    """The survey layer asked for (the first one when none is), a clear 400 otherwise."""
    spec = get_layer(layer_names[0]) if layer_names else layers.survey_layers()[0]
    if spec.is_grid:
        raise InputError("请选择调查图层", "choose a survey layer", code="bad_layer")
    return spec
