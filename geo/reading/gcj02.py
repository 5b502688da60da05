"""GCJ-02, the offset lon/lat of Gaode (AMap) and Tencent maps, to and from WGS84.

GCJ-02 is not a CRS known to PROJ: it is WGS84 lon/lat (degrees) with an obfuscating
offset of a few hundred metres inside China, and unchanged outside it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_GCJ_A = 6378245.0  # Krasovsky 1940 semi-major axis (m)

_GCJ_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared

# Box outside which GCJ-02 leaves coordinates unchanged (degrees).
_GCJ_LON = (72.004, 137.8347)

_GCJ_LAT = (0.8293, 55.8271)

_GCJ_INVERSE_TOL = 1e-10  # degrees

_GCJ_INVERSE_MAX_ITER = 20


def _gcj_inside(lon: FloatArray, lat: FloatArray) -> npt.NDArray[np.bool_]:
    return (lon >= _GCJ_LON[0]) & (lon <= _GCJ_LON[1]) & (lat >= _GCJ_LAT[0]) & (lat <= _GCJ_LAT[1])


def _gcj_offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 offset (degrees) to add to WGS84 lon/lat; inputs must be inside China."""
    x = lon - 105.0
    y = lat - 35.0
    pi = np.pi
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat = dlat + common
    dlat = dlat + (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon = dlon + common
    dlon = dlon + (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * pi
    magic = 1.0 - _GCJ_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * pi)
    return dlon, dlat


def _as_lonlat(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return lon_a.copy(), lat_a.copy()


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Apply the GCJ-02 ("Mars coordinates") obfuscation to WGS84 lon/lat.

    Parameters
    ----------
    lon, lat : array_like or float
        WGS84 (or CGCS2000) longitude and latitude in degrees; broadcast together.

    Returns
    -------
    (ndarray, ndarray)
        GCJ-02 lon/lat in degrees, float64, of the broadcast shape (0-d for
        scalars).  Points outside the China box (72.004..137.8347E,
        0.8293..55.8271N) and non-finite values are returned unchanged.
    """
    lon_a, lat_a = _as_lonlat(lon, lat)
    inside = _gcj_inside(lon_a, lat_a)
    if inside.any():
        dlon, dlat = _gcj_offset(lon_a[inside], lat_a[inside])
        lon_a[inside] += dlon
        lat_a[inside] += dlat
    return lon_a, lat_a


def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Remove the GCJ-02 offset: GCJ-02 lon/lat to WGS84 lon/lat.

    Solved by fixed-point iteration ``w <- w - (gcj(w) - g)`` until the residual
    is below 1e-10 degrees (typically 3-5 iterations), far better than the
    1e-7 degrees (about 1 cm) required.

    Parameters
    ----------
    lon, lat : array_like or float
        GCJ-02 longitude and latitude in degrees; broadcast together.

    Returns
    -------
    (ndarray, ndarray)
        WGS84 lon/lat in degrees, float64, of the broadcast shape.  Points
        outside China and non-finite values are returned unchanged.
    """
    g_lon_all, g_lat_all = _as_lonlat(lon, lat)
    finite = np.isfinite(g_lon_all) & np.isfinite(g_lat_all)
    g_lon, g_lat = g_lon_all[finite], g_lat_all[finite]
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(_GCJ_INVERSE_MAX_ITER):
        if w_lon.size == 0:
            break
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        r_lon = f_lon - g_lon
        r_lat = f_lat - g_lat
        w_lon = w_lon - r_lon
        w_lat = w_lat - r_lat
        if float(np.maximum(np.abs(r_lon), np.abs(r_lat)).max()) < _GCJ_INVERSE_TOL:
            break
    g_lon_all[finite] = w_lon
    g_lat_all[finite] = w_lat
    return g_lon_all, g_lat_all
