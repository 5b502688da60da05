"""Remembered value mappings of the PostGIS store (``gw_value_maps``), audited."""

from __future__ import annotations

from geo.store import clock
from geo.store.interface.value_maps import ValueMap, audit_mapping, removable, value_map_select
from geo.store.postgis.audit import PgAudit

_COLS = 'id, layer, field, raw_key, raw, code, "user", created_at, removed_at, removed_by'


class PgValueMaps(PgAudit):
    """:class:`geo.store.interface.value_maps.ValueMapStore` on PostGIS."""

    def value_maps(self, layer: str | None = None, *, include_removed: bool = False) -> list[ValueMap]:
        """See :meth:`geo.store.interface.value_maps.ValueMapStore.value_maps`.

        Reads ``gw_value_maps``, oldest first.
        """
        sql, args = value_map_select("%s", layer, include_removed)
        return [ValueMap(*row) for row in self._run(sql, args).fetchall()]

    def save_value_map(self, layer: str, field: str, raw_key: str, raw: str, code: str) -> int:
        """See :meth:`geo.store.interface.value_maps.ValueMapStore.save_value_map`.

        The mapping kept for the same layer, field and key is marked removed.  Inside
        :meth:`preview_transaction` nothing is kept (0 for the id).
        """
        if self._previewing:
            return 0
        with self.admin_transaction():
            now = clock.now_iso()
            self._run(
                "UPDATE gw_value_maps SET removed_at=%s, removed_by=%s WHERE layer=%s AND field=%s AND raw_key=%s"
                " AND removed_at IS NULL",
                (now, self.actor.user, layer, field, raw_key),
            )
            row = self._run(
                'INSERT INTO gw_value_maps (layer, field, raw_key, raw, code, "user", created_at)'
                " VALUES (%s,%s,%s,%s,%s,%s,%s) RETURNING id",
                (layer, field, raw_key, raw, code, self.actor.user, now),
            ).fetchone()
            assert row is not None
            map_id = int(row[0])
            audit_mapping(self, "mapping_add", map_id, layer, field, raw, code)
        return map_id

    def remove_value_map(self, map_id: int) -> ValueMap:
        """See :meth:`geo.store.interface.value_maps.ValueMapStore.remove_value_map`.

        Sets ``removed_at`` and ``removed_by``.
        """
        with self.admin_transaction():
            row = self._run(f"SELECT {_COLS} FROM gw_value_maps WHERE id=%s FOR UPDATE", (map_id,)).fetchone()
            m = removable(map_id, None if row is None else ValueMap(*row))
            self._run(
                "UPDATE gw_value_maps SET removed_at=%s, removed_by=%s WHERE id=%s",
                (clock.now_iso(), self.actor.user, map_id),
            )
            audit_mapping(self, "mapping_remove", map_id, m.layer, m.field, m.raw, m.code)
        return next(v for v in self.value_maps(include_removed=True) if v.id == map_id)
