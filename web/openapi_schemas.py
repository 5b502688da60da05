"""The reusable parts of the OpenAPI document (:mod:`web.openapi`): its security schemes and the
schemas of the bodies that several operations share, with the ``$ref`` each operation points at."""

from __future__ import annotations

from typing import Any

from geo.figures.hierarchy import level_names

ERROR_REF = {"$ref": "#/components/schemas/Error"}
GEOJSON_REF = {"$ref": "#/components/schemas/FeatureCollection"}
VIEWPORT_REF = {"$ref": "#/components/schemas/ViewportFeatures"}
REPORT_REF = {"$ref": "#/components/schemas/ImportReport"}
BATCH_REF = {"$ref": "#/components/schemas/Batch"}
STATS_REF = {"$ref": "#/components/schemas/Stats"}


def components() -> dict[str, Any]:
    """The document's ``components``: the security schemes (``bearer``, ``session``) and the schemas."""
    return {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "an API token (gridwatch token add, or /account); acts with its owner's role",
            },
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": "gridwatch_session",
                "description": "a browser signed in at /login; writes also need the X-CSRFToken header",
            },
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message", "message_zh", "message_en"],
                "properties": {
                    "error": {"type": "string", "description": "machine-readable code"},
                    "message": {"type": "string", "description": "in the request's language"},
                    "message_zh": {"type": "string"},
                    "message_en": {"type": "string"},
                    "details": {"type": "object"},
                },
            },
            "FeatureCollection": {
                "type": "object",
                "required": ["type", "features"],
                "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array"}},
            },
            "ViewportFeatures": {
                "type": "object",
                "description": "aggregated: clusters (count, completed, statuses: the count of each status "
                "present, null for none, summing to count); else the features one by one. With as_of, "
                "each feature as the figures count it that day: a site completed after it has the status "
                "__pending__ (not completed as of that day)",
                "required": ["type", "features", "aggregated", "total", "as_of"],
                "properties": {
                    "type": {"const": "FeatureCollection"},
                    "aggregated": {"type": "boolean"},
                    "total": {"type": "integer", "minimum": 0},
                    "as_of": {"type": ["string", "null"], "format": "date", "description": "the as-of day"},
                    "features": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type", "geometry", "properties"],
                            "properties": {
                                "properties": {
                                    "type": "object",
                                    "properties": {
                                        "count": {"type": "integer", "minimum": 1},
                                        "completed": {"type": ["integer", "boolean"]},
                                        "statuses": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "required": ["status", "count"],
                                                "properties": {
                                                    "status": {"type": ["string", "null"]},
                                                    "count": {"type": "integer", "minimum": 1},
                                                },
                                            },
                                        },
                                    },
                                }
                            },
                        },
                    },
                },
            },
            "Stats": {
                "type": "object",
                "required": ["as_of", "level", "columns", "rows", "totals"],
                "properties": {
                    "title": {"type": "string"},
                    "as_of": {"type": "string", "format": "date"},
                    "level": {"type": "string", "enum": level_names()},
                    "columns": {"type": "object"},
                    "fields": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "with rows=arrays: the column names in the order of each row's values",
                    },
                    "rows": {
                        "type": "array",
                        "items": {"oneOf": [{"type": "object"}, {"type": "array"}]},
                        "description": "one object per row, or with rows=arrays one array per row",
                    },
                    "totals": {"type": "object"},
                    "metadata": {
                        "type": "object",
                        "description": "what the figures were computed from: as_of (null: all dates), "
                        "known_at (null: now), computed_at {tx, at, at_local} (the last write included; "
                        "`at` as known_at gives the same figures again), grid {chosen, versions: "
                        "[{id, valid_from, imported_at}]}, layers [{layer, tx, batch, features}], timezone",
                    },
                },
            },
            "ImportReport": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string", "enum": ["preview", "committed", "duplicate"]},
                    "upload_id": {"type": "string"},
                    "batch_id": {"type": ["integer", "null"]},
                    "rows_read": {"type": "integer"},
                    "added": {"type": "integer"},
                    "updated": {"type": "integer"},
                    "unchanged": {"type": "integer"},
                    "rejected": {"type": "array"},
                    "warnings": {"type": "array"},
                    "encoding": {"type": ["string", "null"]},
                    "crs": {"type": ["string", "null"]},
                    "grid_change": {
                        "type": ["object", "null"],
                        "description": "a grid upload: valid_from, version, previous_version, units_added/"
                        "removed/reshaped (the first 1000) with their counts, features_moved per layer, "
                        "moved_by_community, issued_changed (dated into the past: from, to, computed_on, "
                        "month_ends)",
                    },
                },
            },
            "Batch": {
                "type": "object",
                "required": ["id", "layer", "source_name", "created_at", "status"],
                "properties": {
                    "id": {"type": "integer"},
                    "layer": {"type": "string"},
                    "source_name": {"type": "string"},
                    "created_at": {"type": "string"},
                    "user": {"type": ["string", "null"]},
                    "status": {"type": "string", "enum": ["active", "rolled_back"]},
                },
            },
        },
    }
