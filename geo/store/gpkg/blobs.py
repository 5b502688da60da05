"""GeoPackage geometry blobs: the binary header and ISO WKB, encoded and decoded in bulk."""

from __future__ import annotations

import numpy as np
import shapely

_HEADER = np.dtype(
    [("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs", "<i4"), ("env", "<f8", (4,))]
)
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def encode_geometries(geoms: np.ndarray, srs_id: int, wkb: np.ndarray | None = None) -> list[bytes]:
    """GeoPackage binary blobs (little-endian, XY envelope, ISO WKB) for shapely geometries;
    ``wkb``, when given, is their WKB as this writes it (see ``FeatureRows.wkb``), used as it is."""
    n = len(geoms)
    if n == 0:
        return []
    if wkb is None or len(wkb) != n:
        wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso", include_srid=False, output_dimension=2)
    bounds = shapely.bounds(geoms)
    header = np.zeros(n, dtype=_HEADER)
    header["magic"] = b"GP"
    empty = shapely.is_empty(geoms)
    header["flags"] = np.where(empty, 0b00010001, 0b00000011)
    header["srs"] = srs_id
    header["env"] = bounds[:, [0, 2, 1, 3]]  # minx, maxx, miny, maxy
    raw = header.tobytes()
    size = _HEADER.itemsize
    if not empty.any():
        # one buffer of header+WKB pairs, cut at the record boundaries
        heads = [raw[i : i + size] for i in range(0, n * size, size)]
        joined = b"".join([part for pair in zip(heads, wkb.tolist(), strict=True) for part in pair])
        ends = np.cumsum(np.fromiter(map(len, wkb), dtype=np.int64, count=n) + size)
        starts = np.concatenate([[0], ends[:-1]])
        return [joined[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    out: list[bytes] = []
    for i in range(n):
        head = raw[i * size : (i + 1) * size]
        if empty[i]:
            head = head[:8]
        out.append(head + wkb[i])
    return out


def decode_geometries(blobs: list[bytes | None]) -> np.ndarray:
    """Shapely geometries from GeoPackage blobs (None for NULL)."""
    if blobs and all(b is not None and b[3] == 0b00000011 for b in blobs):
        # the common case (our own writer: little-endian header with an XY envelope)
        return shapely.from_wkb(np.array([b[40:] for b in blobs if b is not None], dtype=object))
    wkbs: list[bytes | None] = []
    for b in blobs:
        if b is None:
            wkbs.append(None)
            continue
        env = (b[3] >> 1) & 0b111
        wkbs.append(b[8 + _ENVELOPE_BYTES.get(env, 0) :])
    return shapely.from_wkb(np.array(wkbs, dtype=object))
