"""Typed views of a layer that holds more than one geometry type, the same on both backends.

A layer whose declaration takes points and polygons is one table whose geometry
column is declared ``GEOMETRY`` once it holds both.  GIS tools then see a layer of "any"
geometry; so next to the table each backend keeps one **view per geometry type the layer has
held**, named ``<layer>_<type>`` (``<layer>_point``, ``<layer>_polygon``, and
``<layer>_multipoint`` / ``<layer>_multipolygon`` when multi-part rows arrive), each
declared with its one type and the store's SRID, so QGIS and GDAL open it as a typed layer.
The views select the table's current rows of their type, so they follow every write and
rollback; together they hold every row of the table.  A view is made the first time a row of
its type is written into a table declared ``GEOMETRY`` (or when the table becomes so: then for
the type it held before too) and is never dropped.  This module decides which views a write
needs; each backend makes them (:mod:`geo.store.gpkg.spatial`,
:mod:`geo.store.postgis.tables`).
"""

from __future__ import annotations

from collections.abc import Iterable

#: the geometry types that get a typed view (GeoPackage / OGC names, upper case)
VIEW_TYPES = ("POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING", "MULTIPOLYGON")
#: the name a table declares when it holds more than one type
ANY = "GEOMETRY"
#: how a view's description names its type (zh, en)
VIEW_LABELS = {
    "POINT": ("点", "points"),
    "LINESTRING": ("线", "lines"),
    "POLYGON": ("面", "polygons"),
    "MULTIPOINT": ("多点", "multi-points"),
    "MULTILINESTRING": ("多线", "multi-lines"),
    "MULTIPOLYGON": ("多面", "multi-polygons"),
}


def view_name(layer: str, type_name: str) -> str:
    """The view of ``layer``'s rows of ``type_name`` (``POINT`` → ``<layer>_point``)."""
    return f"{layer}_{type_name.lower()}"


def view_label(label_zh: str, label_en: str, type_name: str) -> tuple[str, str]:
    """The identifier and English description of the view of ``type_name`` of a layer labelled
    ``label_zh`` / ``label_en`` (``<标签>（点）<label> (points)``)."""
    zh, en = VIEW_LABELS[type_name]
    return f"{label_zh}（{zh}）{label_en} ({en})", f"{label_en} ({en})"


def views_needed(declared: str | None, before: str | None, incoming: Iterable[str]) -> list[str]:
    """The geometry types whose view must exist after a write of rows of the ``incoming``
    types into a table declared ``before`` the write and ``declared`` after it (names as in
    :data:`VIEW_TYPES`; any case).  None unless the table is declared ``GEOMETRY`` after the
    write; when it became so with this write, the type it declared before (and, for a multi
    type, its single type, which such a table may hold too) needs its view as well."""
    if (declared or "").upper() != ANY:
        return []
    wanted = {n.upper() for n in incoming}
    if before and before.upper() != ANY:
        wanted.add(before.upper())
        if before.upper().startswith("MULTI"):
            wanted.add(before.upper().removeprefix("MULTI"))
    return [t for t in VIEW_TYPES if t in wanted]
