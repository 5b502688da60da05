"""The photo rows of the GeoPackage store (``gw_photos``), audited.

The table is made by the first photo written (or a copy loaded), so a store that never held a
photo is as it was and a read-only one still reads (as holding none).
"""

from __future__ import annotations

from geo.store.gpkg.audit import GpkgAudit
from geo.store.interface.photos import PHOTO_COLUMNS, PhotoRow, photo_insert, photo_row, photo_values

#: ``gw_photos`` (made when first needed)
PHOTOS_SQL = (
    """CREATE TABLE IF NOT EXISTS gw_photos (id INTEGER PRIMARY KEY AUTOINCREMENT, layer TEXT NOT NULL,
    feature INTEGER NOT NULL, feature_version INTEGER, sha256 TEXT NOT NULL, mime TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, bytes INTEGER NOT NULL, taken_at TEXT, lon REAL, lat REAL,
    uploaded_by TEXT, uploaded_at TEXT NOT NULL, note TEXT)""",
    """CREATE INDEX IF NOT EXISTS gw_photos_feature ON gw_photos (layer, feature)""",
    """CREATE INDEX IF NOT EXISTS gw_photos_sha256 ON gw_photos (sha256)""",
)

_SELECT = f"SELECT {', '.join(PHOTO_COLUMNS)} FROM gw_photos"


class GpkgPhotos(GpkgAudit):
    """:class:`geo.store.interface.photos.PhotoStore` on the GeoPackage."""

    def _make_photos_table(self) -> None:
        for stmt in PHOTOS_SQL:
            self.conn.execute(stmt)

    def add_photo(self, row: PhotoRow) -> int:
        """See :meth:`geo.store.interface.photos.PhotoStore.add_photo`."""
        with self.admin_transaction():
            self._make_photos_table()
            self.conn.execute(photo_insert("?"), photo_values(row))
            photo_id = int(self.conn.last_insert_rowid())
            self.record_audit(
                "photo_add",
                layer=row.layer,
                counts={"photo": photo_id, "feature": row.feature, "bytes": row.bytes},
                detail=row.sha256,
            )
        return photo_id

    def photos(self, layer: str, feature: int) -> list[PhotoRow]:
        """See :meth:`geo.store.interface.photos.PhotoStore.photos`."""
        if not self._has_table("gw_photos"):
            return []
        rows = self.conn.execute(_SELECT + " WHERE layer=? AND feature=? ORDER BY id", (layer, int(feature)))
        return [photo_row(r) for r in rows]

    def photo(self, photo_id: int) -> PhotoRow | None:
        """See :meth:`geo.store.interface.photos.PhotoStore.photo`."""
        if not self._has_table("gw_photos"):
            return None
        row = self.conn.execute(_SELECT + " WHERE id=?", (int(photo_id),)).fetchone()
        return photo_row(row) if row else None

    def photo_uses(self, sha256: str) -> int:
        """See :meth:`geo.store.interface.photos.PhotoStore.photo_uses`."""
        if not self._has_table("gw_photos"):
            return 0
        row = self.conn.execute("SELECT count(*) FROM gw_photos WHERE sha256=?", (sha256,)).fetchone()
        return int(row[0]) if row else 0
