"""Lossless columnar encoding of a list of JSON values: constants, integer deltas, decimals, timestamps.

A batch of telemetry records is sent as one column per field. Each column is one JSON object:

- ``{"c": v}``: every value is ``v`` (same JSON text);
- ``{"r": [...]}``: the raw values, when nothing better applies;
- ``{"e": "int", "o": 1|2, "d": [...]}``: integers as first or second differences;
- ``{"e": "dec", "k": k, "o": 1|2, "d": [...]}``: floats that are exactly ``n / 10**k`` (k <= 9),
  sent as differences of the integers ``n``;
- ``{"e": "ms", "o": 1|2, "d": [...]}``: ISO 8601 UTC strings with milliseconds
  (``2026-03-02T08:00:00.000Z``), as differences of epoch milliseconds.

Encoded columns may add ``"n": [i, ...]``, the positions holding ``null``; ``d`` then covers the
other positions only. A value is encoded this way only when decoding gives back the very same
JSON text, so zlib over the result sees small, repetitive numbers instead of full coordinates.
Decoding refuses anything inconsistent with ``ValueError`` (the collector reads hostile input).
"""

from __future__ import annotations

import datetime
import itertools
import json
import math
import re
from collections.abc import Sequence
from typing import Any

Column = dict[str, Any]

#: Floats need ``|n| < 2**53`` for ``n / 10**k`` to be exact; deltas are bounded the same way.
MAX_EXACT = 2**53
MAX_SCALE = 9
_ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def encode(values: Sequence[Any]) -> Column:
    """The most compact exact encoding of ``values`` (a column of one field over a batch)."""
    if values and _same_text(values):
        return {"c": values[0]}
    nulls = [i for i, v in enumerate(values) if v is None]
    dense = [v for v in values if v is not None]
    column = _encode_dense(dense)
    if column is None:
        return {"r": list(values)}
    if nulls:
        column["n"] = nulls
    return column


def decode(column: Column, count: int) -> list[Any]:
    """The ``count`` values of an encoded column; ValueError when the column does not fit."""
    if "c" in column:
        return [column["c"]] * count
    if "r" in column:
        raw = column["r"]
        if not isinstance(raw, list) or len(raw) != count:
            raise ValueError(f"raw column has {_len(raw)} values, batch has {count}")
        return list(raw)
    nulls = column.get("n", [])
    if not isinstance(nulls, list) or any(not _is_int(i) or not 0 <= i < count for i in nulls):
        raise ValueError("null positions out of range")
    if len(set(nulls)) != len(nulls):
        raise ValueError("null positions repeated")
    dense = _decode_dense(column, count - len(nulls))
    out: list[Any] = [None] * count
    null_set = set(nulls)
    values = iter(dense)
    for i in range(count):
        if i not in null_set:
            out[i] = next(values)
    return out


# -- encoding -------------------------------------------------------------------------------------


#: Types whose JSON text is the same exactly when type and value are (floats: sign of zero too).
_SCALARS = (str, int, bool, type(None), float)


def _same_text(values: Sequence[Any]) -> bool:
    """Whether every value has the JSON text of the first.

    Decided on the values themselves when the first is a scalar (the publisher encodes every
    column of every batch, and one ``json.dumps`` per value was most of its work); lists,
    objects and NaN are compared by their text.
    """
    first = values[0]
    kind = type(first)
    if kind not in _SCALARS or (kind is float and math.isnan(first)):
        text = _text(first)
        return all(_text(v) == text for v in values)
    if kind is float:
        return all(type(v) is float and _same_float(v, first) for v in values)
    return all(type(v) is kind and v == first for v in values)


def _encode_dense(values: list[Any]) -> Column | None:
    if values and all(_is_int(v) for v in values):
        return _with_deltas({"e": "int"}, values)
    if values and all(isinstance(v, float) for v in values):
        scale = _decimal_scale(values)
        return None if scale is None else _with_deltas({"e": "dec", "k": scale}, _scaled(values, scale))
    if values and all(isinstance(v, str) for v in values):
        millis = [_iso_ms(v) for v in values]
        dense = [m for m in millis if m is not None]
        return None if len(dense) < len(millis) else _with_deltas({"e": "ms"}, dense)
    return None


def _scaled(values: list[float], scale: int) -> list[int]:
    return [round(v * 10**scale) for v in values]


def _with_deltas(column: Column, ints: list[int]) -> Column | None:
    if any(abs(n) >= MAX_EXACT for n in ints):
        return None
    first = _diff(ints)
    second = _diff(first)
    # Second differences win for steady rates (1 Hz timestamps, straight driving).
    better = second if len(_text(second)) < len(_text(first)) else first
    column["o"] = 2 if better is second else 1
    column["d"] = better
    return column


def _diff(ints: list[int]) -> list[int]:
    return ints[:1] + [b - a for a, b in itertools.pairwise(ints)]


def _decimal_scale(values: list[float]) -> int | None:
    """The smallest k such that every value is exactly n / 10**k, or None."""
    for scale in range(MAX_SCALE + 1):
        factor = 10**scale
        if all(abs(v) * factor < MAX_EXACT and _same_float(round(v * factor) / factor, v) for v in values):
            return scale
    return None


def _same_float(a: float, b: float) -> bool:
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _iso_ms(text: str) -> int | None:
    if not _ISO_MS.fullmatch(text):
        return None
    # The pattern fixed where every field is: slicing is what strptime did, at a fraction of the
    # cost (one call per GPS fix); datetime() refuses the same out-of-range fields.
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    try:
        when = datetime.datetime(
            year, month, day, hour, minute, second, int(text[20:23]) * 1000, tzinfo=datetime.UTC
        )
    except ValueError:
        return None
    millis = (when - _EPOCH) // datetime.timedelta(milliseconds=1)
    return millis if _format_ms(millis) == text else None


def _format_ms(millis: int) -> str:
    when = _EPOCH + datetime.timedelta(milliseconds=millis)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


# -- decoding -------------------------------------------------------------------------------------


def _decode_dense(column: Column, count: int) -> list[Any]:
    kind, order, deltas = column.get("e"), column.get("o", 1), column.get("d")
    if order not in (1, 2) or not isinstance(deltas, list) or len(deltas) != count:
        raise ValueError(f"encoded column needs o in (1, 2) and {count} deltas, got o={order!r}")
    if any(not _is_int(d) or abs(d) >= 8 * MAX_EXACT for d in deltas):
        raise ValueError("deltas must be integers of a sane size")
    ints = _cumsum(deltas)
    if order == 2:
        ints = _cumsum(ints)
    if any(abs(n) >= MAX_EXACT for n in ints):
        raise ValueError("decoded integers out of range")
    if kind == "int":
        return ints
    if kind == "dec":
        scale = column.get("k")
        if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= MAX_SCALE:
            raise ValueError(f"decimal scale must be 0..{MAX_SCALE}, got {scale!r}")
        return [n / 10**scale for n in ints]
    if kind == "ms":
        try:
            return [_format_ms(n) for n in ints]
        except (OverflowError, ValueError) as exc:
            raise ValueError(f"timestamp out of range: {exc}") from exc
    raise ValueError(f"unknown column encoding {kind!r}")


def _cumsum(deltas: list[int]) -> list[int]:
    total, out = 0, []
    for delta in deltas:
        total += delta
        out.append(total)
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _len(value: object) -> str:
    return str(len(value)) if isinstance(value, list) else "no list of"


def _text(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
