"""The photo rows of the PostGIS store (``gw_photos``, made with the store's other tables), audited."""

from __future__ import annotations

from geo.store.interface.photos import PHOTO_COLUMNS, PhotoRow, photo_insert, photo_row, photo_values
from geo.store.postgis.audit import PgAudit

_SELECT = f"SELECT {', '.join(PHOTO_COLUMNS)} FROM gw_photos"


class PgPhotos(PgAudit):
    """:class:`geo.store.interface.photos.PhotoStore` on PostGIS."""

    def add_photo(self, row: PhotoRow) -> int:
        """See :meth:`geo.store.interface.photos.PhotoStore.add_photo`."""
        with self.admin_transaction():
            got = self._run(photo_insert("%s") + " RETURNING id", photo_values(row)).fetchone()
            assert got is not None
            photo_id = int(got[0])
            self.record_audit(
                "photo_add",
                layer=row.layer,
                counts={"photo": photo_id, "feature": row.feature, "bytes": row.bytes},
                detail=row.sha256,
            )
        return photo_id

    def photos(self, layer: str, feature: int) -> list[PhotoRow]:
        """See :meth:`geo.store.interface.photos.PhotoStore.photos`."""
        rows = self._run(_SELECT + " WHERE layer=%s AND feature=%s ORDER BY id", (layer, int(feature)))
        return [photo_row(r) for r in rows.fetchall()]

    def photo(self, photo_id: int) -> PhotoRow | None:
        """See :meth:`geo.store.interface.photos.PhotoStore.photo`."""
        row = self._run(_SELECT + " WHERE id=%s", (int(photo_id),)).fetchone()
        return photo_row(row) if row else None

    def photo_uses(self, sha256: str) -> int:
        """See :meth:`geo.store.interface.photos.PhotoStore.photo_uses`."""
        row = self._run("SELECT count(*) FROM gw_photos WHERE sha256=%s", (sha256,)).fetchone()
        return int(row[0]) if row else 0
