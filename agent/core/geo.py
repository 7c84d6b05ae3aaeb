"""Small geodesy for stops: great-circle distance, geohash site ids and metric offsets.

Everything works on WGS84 degrees with a spherical Earth; at the scale of a bus stop (metres to
a few kilometres) the error against the ellipsoid is well under a GPS fix's own error.
"""

from __future__ import annotations

import math

#: Mean Earth radius (IUGG), metres: the sphere that best fits the ellipsoid on average.
EARTH_RADIUS_M = 6_371_008.8

_BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"  # the geohash alphabet (no a, i, l, o)

#: Geohash length for generated site ids: cells of about 153 m x 153 m at the equator (narrower
#: east-west further north), the size of a village square, so one stop gets one id.
SITE_ID_PRECISION = 7


def valid_position(lat: float, lon: float) -> bool:
    """True when ``lat``/``lon`` are finite and within the WGS84 ranges."""
    return math.isfinite(lat) and math.isfinite(lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    # min() guards against h creeping past 1.0 by rounding for antipodal points.
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def geohash(lat: float, lon: float, precision: int = SITE_ID_PRECISION) -> str:
    """The geohash of a point: interleaved lon/lat bisection bits, 5 bits per base-32 character."""
    if not valid_position(lat, lon):
        raise ValueError(f"not a valid position: lat={lat!r}, lon={lon!r}")
    if precision < 1:
        raise ValueError(f"precision must be at least 1, got {precision}")
    lat_lo, lat_hi = -90.0, 90.0
    lon_lo, lon_hi = -180.0, 180.0
    chars: list[str] = []
    bits = 0
    value = 0
    even = True  # geohash starts with a longitude bit
    while len(chars) < precision:
        if even:
            mid = (lon_lo + lon_hi) / 2
            bit = lon >= mid
            lon_lo, lon_hi = (mid, lon_hi) if bit else (lon_lo, mid)
        else:
            mid = (lat_lo + lat_hi) / 2
            bit = lat >= mid
            lat_lo, lat_hi = (mid, lat_hi) if bit else (lat_lo, mid)
        value = (value << 1) | int(bit)
        bits += 1
        even = not even
        if bits == 5:
            chars.append(_BASE32[value])
            bits = 0
            value = 0
    return "".join(chars)


def site_id_for(lat: float, lon: float) -> str:
    """The stable generated id of an unplanned place: ``gh-`` plus its 7-character geohash."""
    return "gh-" + geohash(lat, lon, SITE_ID_PRECISION)


def offset_m(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point ``north_m`` metres north and ``east_m`` metres east of (lat, lon), in degrees.

    A local flat-Earth step: exact enough for the few kilometres simulators and tests move, and
    consistent with :func:`haversine_m` to well under a metre at that range.
    """
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    # The floor keeps the pole (where east is undefined) from dividing by zero.
    parallel_radius_m = max(EARTH_RADIUS_M * math.cos(math.radians(lat)), 1e-6)
    dlon = math.degrees(east_m / parallel_radius_m)
    return lat + dlat, lon + dlon
