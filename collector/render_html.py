"""stops.html: one self-contained page, a Leaflet map with a marker per site and a sortable table.

Leaflet is inlined from Debian's libjs-leaflet when installed (the page then works offline), else
loaded from a CDN with Subresource Integrity. Text from the field reaches the page two ways, both
inert: the table is escaped here with ``html.escape``; the popups are built by map_script.js from a
JSON block with ``textContent``. That JSON has ``<``, ``>`` and ``&`` written as ``\\u003c``... so
neither ``</script>`` nor ``<!--`` can end or bend the block. A Content-Security-Policy allowing
only the page's own scripts (by hash) backs this up.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.core.grading import GRADE_MEANING, Grade
from collector.aggregate import WORST_FIRST, SiteFigures
from collector.map_columns import Column, popup_lines, table_columns

#: Debian's libjs-leaflet.
LEAFLET_DIR = Path("/usr/share/javascript/leaflet")
#: The CDN copy used without it, with its SRI hashes (sha256 of the npm package leaflet@1.9.4's files).
CDN_CSS = (
    "https://unpkg.com/leaflet@1.9.4/dist/leaflet.css",
    "sha256-p4NxAoJBhIIN+hmNHrzRCf9tD/miZyoHS5obTRR9BMY=",
)
CDN_JS = (
    "https://unpkg.com/leaflet@1.9.4/dist/leaflet.js",
    "sha256-20nQCchB9co0qIjJZRGuk2/Z9VM+kNiyxNV1lvTlZBo=",
)
CDN_ORIGIN = "https://unpkg.com"
TILE_ORIGIN = "https://tile.openstreetmap.org"

#: Marker colours (ColorBrewer RdYlGn, 4 classes, readable for the common colour blindnesses) and grey.
GRADE_COLORS: dict[Grade, str] = {
    "good": "#1a9641",
    "usable": "#a6d96a",
    "poor": "#fdae61",
    "unusable": "#d7191c",
    "unknown": "#9e9e9e",
}

_HERE = Path(__file__).resolve().parent
_TEMPLATE = _HERE / "map_template.html"
_SCRIPT = _HERE / "map_script.js"
_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
_NUMERIC = frozenset({"usable_pct", "visits", "latency_ms", "down_mbps", "up_mbps"})


def html_text(
    sites: Sequence[SiteFigures],
    names: dict[str, str],
    *,
    title: str,
    summary: Sequence[str],
    leaflet_dir: Path | None = LEAFLET_DIR,
) -> str:
    """The whole page. ``summary``: lines shown under the title (plain text, escaped here)."""
    leaflet_css, leaflet_js = _leaflet(leaflet_dir)
    script = _SCRIPT.read_text(encoding="utf-8")
    cols = table_columns(names)
    parts = {
        "TITLE": html.escape(title),
        "SUMMARY": "\n  ".join(f"<p>{html.escape(line)}</p>" for line in summary),
        "LEAFLET_CSS": _style_block(leaflet_css),
        "LEAFLET_JS": _script_block(leaflet_js),
        "GRADE_CSS": "\n".join(
            f"  .grade-{grade} {{ background: {color}; }}" for grade, color in GRADE_COLORS.items()
        ),
        "TABLE_HEAD": "".join(_header(col, first=col.key == "grade") for col in cols),
        "TABLE_ROWS": "\n".join(_row(site, cols) for site in sites),
        "DATA": script_json(_page_data(sites, names)),
        "MAP_JS": script,
        "CSP": _csp(leaflet_js, script),
    }
    template = _TEMPLATE.read_text(encoding="utf-8")
    # One pass over the template: text put in is never searched for placeholders again.
    return _PLACEHOLDER.sub(lambda match: parts[match.group(1)], template)


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no ``<``, ``>``, ``&`` or line separators left raw."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def _page_data(sites: Sequence[SiteFigures], names: dict[str, str]) -> dict[str, Any]:
    counts = {grade: 0 for grade in WORST_FIRST}
    for site in sites:
        counts[site.grade] += 1
    return {
        "sites": [
            {
                "id": site.site_id or site.key,
                "title": site.name or site.site_id or site.key,
                "kind": site.kind,
                "grade": site.grade,
                "color": GRADE_COLORS[site.grade],
                "lat": site.lat,
                "lon": site.lon,
                "popup": popup_lines(site, names),
            }
            for site in sites
        ],
        "legend": [
            {
                "grade": grade,
                "color": GRADE_COLORS[grade],
                "meaning": GRADE_MEANING[grade],
                "count": counts[grade],
            }
            for grade in WORST_FIRST
        ],
    }


def _header(col: Column, *, first: bool) -> str:
    sort = ' aria-sort="ascending"' if first else ""
    return f'<th scope="col"{sort}><button type="button">{html.escape(col.header)}</button></th>'


def _row(site: SiteFigures, cols: Sequence[Column]) -> str:
    cells = []
    for col in cols:
        value = col.value(site)
        text = html.escape(col.text(value))
        if col.key == "grade":
            sort: object = site.severity
            text = f'<span class="dot grade-{site.grade}"></span>{text}'
        else:
            sort = "" if value is None else value.lower() if isinstance(value, str) else value
        css = ' class="num"' if col.key in _NUMERIC else ' class="when"' if col.key == "last_visit" else ""
        cells.append(f'<td data-sort="{html.escape(str(sort))}"{css}>{text}</td>')
    return f'      <tr data-site="{html.escape(site.site_id or site.key)}">{"".join(cells)}</tr>'


# -- Leaflet and the policy ------------------------------------------------------------------------------


def _leaflet(directory: Path | None) -> tuple[str | None, str | None]:
    """(css, js) text of a local Leaflet, or (None, None) to load it from the CDN."""
    if directory is None:
        return None, None
    css, js = directory / "leaflet.css", directory / "leaflet.js"
    try:
        css_text, js_text = css.read_text(encoding="utf-8"), js.read_text(encoding="utf-8")
    except OSError:
        return None, None
    # The source map would be fetched beside the page, where it is not.
    js_text = re.sub(r"^//# sourceMappingURL=.*$", "", js_text, flags=re.MULTILINE)
    return css_text, js_text


def _style_block(css: str | None) -> str:
    if css is None:
        url, digest = CDN_CSS
        return f'<link rel="stylesheet" href="{url}" integrity="{digest}" crossorigin="">'
    return "<style>\n" + re.sub("</style", lambda _: "<\\/style", css, flags=re.IGNORECASE) + "\n</style>"


def _script_block(js: str | None) -> str:
    if js is None:
        url, digest = CDN_JS
        return f'<script src="{url}" integrity="{digest}" crossorigin=""></script>'
    return f"<script>{_inline_js(js)}</script>"


def _inline_js(js: str) -> str:
    return re.sub("</script", lambda _: "<\\/script", js, flags=re.IGNORECASE)


def _csp(leaflet_js: str | None, script: str) -> str:
    scripts = [_sha256(script)]
    origins = ""
    if leaflet_js is None:
        origins = f" {CDN_ORIGIN}"
    else:
        scripts.append(_sha256(_inline_js(leaflet_js)))
    return (
        "default-src 'none'; "
        f"script-src {' '.join(scripts)}{origins}; "
        f"style-src 'unsafe-inline'{origins}; "
        f"img-src data: {TILE_ORIGIN}"
    )


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"
