"""stops.geojson (for QGIS and any GIS) and stops.csv (for a spreadsheet), from the same columns.

stops.csv is written for Excel as French planners open it, by a double click:

- UTF-8 **with a BOM**: without it Excel reads the file as Windows-1252 and "Saint-Aignan, Église"
  comes out garbled; LibreOffice and Python (``utf-8-sig``) accept the BOM too;
- ``;`` between fields and a **decimal comma**: the list and decimal separators of a French
  Windows, so each figure lands in its own cell as a number. Other tools read the GeoJSON, whose
  numbers are plain JSON;
- a text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading ``'``:
  a stop name or label typed in the field must never run as a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector.aggregate import SiteFigures
from collector.map_columns import Column, Value

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def geojson_doc(sites: Sequence[SiteFigures], cols: Sequence[Column], meta: dict[str, Any]) -> dict[str, Any]:
    """A FeatureCollection of Points ([lon, lat], RFC 7946); a site without a position has a null geometry."""
    features = []
    for site in sites:
        geometry = None
        if site.lat is not None and site.lon is not None:
            geometry = {"type": "Point", "coordinates": [round(site.lon, 6), round(site.lat, 6)]}
        properties = {col.key: col.value(site) for col in cols}
        features.append(
            {"type": "Feature", "id": properties["id"], "geometry": geometry, "properties": properties}
        )
    return {"type": "FeatureCollection", "busagent": meta, "features": features}


def geojson_text(sites: Sequence[SiteFigures], cols: Sequence[Column], meta: dict[str, Any]) -> str:
    return json.dumps(geojson_doc(sites, cols, meta), ensure_ascii=False, indent=1, allow_nan=False) + "\n"


def csv_text(sites: Sequence[SiteFigures], cols: Sequence[Column]) -> str:
    """The CSV as text (the BOM is added when writing); one row per site, the table's order."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([col.header for col in cols])
    for site in sites:
        writer.writerow([csv_cell(col.value(site)) for col in cols])
    return out.getvalue()


def csv_cell(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
        return text.replace(".", ",")
    return "'" + value if value.startswith(_FORMULA_START) else value


def write_text(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    """Write through a temporary file and rename: a map open in a browser is never half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding=encoding, newline="") as handle:
        handle.write(text)
    os.replace(tmp, path)
