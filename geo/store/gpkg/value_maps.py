"""Remembered value mappings (``gw_value_maps``), audited."""

from __future__ import annotations

from geo.store import clock
from geo.store.gpkg.audit import GpkgAudit
from geo.store.interface.value_maps import ValueMap, audit_mapping, removable, value_map_select


class GpkgValueMaps(GpkgAudit):
    """:class:`geo.store.interface.value_maps.ValueMapStore` on the GeoPackage."""

    def value_maps(self, layer: str | None = None, *, include_removed: bool = False) -> list[ValueMap]:
        """See :meth:`geo.store.interface.value_maps.ValueMapStore.value_maps`.

        Reads ``gw_value_maps``; empty before the first mapping is saved.
        """
        if not self._has_table("gw_value_maps"):
            return []
        sql, args = value_map_select("?", layer, include_removed)
        return [ValueMap(*row) for row in self.conn.execute(sql, args)]

    def save_value_map(self, layer: str, field: str, raw_key: str, raw: str, code: str) -> int:
        """See :meth:`geo.store.interface.value_maps.ValueMapStore.save_value_map`.

        Writes ``gw_value_maps`` (made on the first save); the mapping replaced is marked removed.
        """
        with self.admin_transaction():
            self.conn.execute(_VALUE_MAPS_SQL)
            now = clock.now_iso()
            self.conn.execute(
                "UPDATE gw_value_maps SET removed_at=?, removed_by=? WHERE layer=? AND field=? AND raw_key=?"
                " AND removed_at IS NULL",
                (now, self.actor.user, layer, field, raw_key),
            )
            self.conn.execute(
                "INSERT INTO gw_value_maps (layer, field, raw_key, raw, code, user, created_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (layer, field, raw_key, raw, code, self.actor.user, now),
            )
            map_id = int(self.conn.last_insert_rowid())
            audit_mapping(self, "mapping_add", map_id, layer, field, raw, code)
        return map_id

    def remove_value_map(self, map_id: int) -> ValueMap:
        """See :meth:`geo.store.interface.value_maps.ValueMapStore.remove_value_map`.

        Sets ``removed_at`` and ``removed_by`` in ``gw_value_maps``.
        """
        with self.admin_transaction():
            m = removable(
                map_id, next((v for v in self.value_maps(include_removed=True) if v.id == map_id), None)
            )
            self.conn.execute(
                "UPDATE gw_value_maps SET removed_at=?, removed_by=? WHERE id=?",
                (clock.now_iso(), self.actor.user, map_id),
            )
            audit_mapping(self, "mapping_remove", map_id, m.layer, m.field, m.raw, m.code)
        return next(v for v in self.value_maps(include_removed=True) if v.id == map_id)


#: Remembered value mappings; made when the first one is saved.
_VALUE_MAPS_SQL = """CREATE TABLE IF NOT EXISTS gw_value_maps (id INTEGER PRIMARY KEY AUTOINCREMENT,
    layer TEXT NOT NULL, field TEXT NOT NULL, raw_key TEXT NOT NULL, raw TEXT NOT NULL, code TEXT NOT NULL,
    user TEXT, created_at TEXT NOT NULL, removed_at TEXT, removed_by TEXT)"""
