"""stops.html in a real headless Chromium, offline: markers, table, popups, sorting, field text kept inert.

Needs the Debian packages chromium and libjs-leaflet. No host name resolves in this browser, so the
OpenStreetMap tiles fail as they do without a network: that must only drop the background.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.maps import write_maps
from collector.render_html import LEAFLET_DIR
from collector.store import Store
from tests.collector.cdp import Browser, Page
from tests.collector.map_fleet import LIZAC, SCRIPT_LABEL, XSS, XSS_NAME, build_fleet

NOTE = "document.getElementById('map-note').textContent"
ROW_IDS = "[...document.querySelectorAll('#sites tbody tr')].map(r => r.dataset.site)"
POPUP = "document.querySelector('.leaflet-popup-content')"


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the maps with Leaflet inlined, the same maps loading Leaflet from its CDN)."""
    assert (LEAFLET_DIR / "leaflet.js").exists(), "install the Debian package libjs-leaflet"
    root = tmp_path_factory.mktemp("browser")
    store = Store(root / "collector.db")
    build_fleet(store)
    write_maps(store, root / "inline")
    write_maps(store, root / "cdn", leaflet_dir=None)
    store.close()
    yield root / "inline", root / "cdn"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    running = Browser(tmp_path_factory.mktemp("chromium") / "profile")
    yield running
    running.close()


@pytest.fixture(scope="module")
def page(browser: Browser, maps: tuple[Path, Path]) -> Page:
    opened = browser.open((maps[0] / "stops.html").as_uri())
    # Tiles cannot load here: the page gives up on them and says so.
    opened.wait_for(f"{NOTE}.startsWith('Background map unavailable')")
    return opened


def features(out: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads((out / "stops.geojson").read_text(encoding="utf-8"))["features"]
    return found


def test_offline_the_page_draws_one_marker_per_located_site_without_errors(
    page: Page, maps: tuple[Path, Path]
) -> None:
    located = [f for f in features(maps[0]) if f["geometry"] is not None]
    assert page.eval("document.querySelectorAll('path.site-marker').length") == len(located) == 6
    assert page.errors() == []
    assert any("tile.openstreetmap.org" in url for url in page.network_failures())  # it did try
    assert page.eval("document.querySelectorAll('.leaflet-tile-pane img').length") == 0  # layer dropped


def test_the_table_rows_are_the_geojson_features_in_the_same_order(
    page: Page, maps: tuple[Path, Path]
) -> None:
    ids = [f["id"] for f in features(maps[0])]
    assert page.eval(ROW_IDS) == ids
    assert page.eval("document.querySelectorAll('#sites tbody tr')[0].cells[2].textContent") == "poor"


def test_field_text_is_shown_literally_and_never_runs(page: Page) -> None:
    assert page.eval(
        "[...document.querySelectorAll('#sites td')].some(td => td.textContent === "
        + json.dumps(XSS_NAME)
        + ")"
    )
    page.eval(f"document.querySelector('#sites tr[data-site=\"{XSS.id}\"]').click()")
    page.wait_for(POPUP)
    assert page.eval(f"{POPUP}.querySelector('h3').textContent") == XSS_NAME
    rows = "[...document.querySelectorAll('#sites tbody tr')]"
    script_row = f"{rows}.find(r => r.cells[0].textContent === {json.dumps(SCRIPT_LABEL)})"
    assert page.eval(f"!!{script_row}")
    page.eval(f"{script_row}.click()")
    page.wait_for(f"{POPUP} && {POPUP}.querySelector('h3').textContent === {json.dumps(SCRIPT_LABEL)}")
    # Nothing the field typed became an element: no <img> but map tiles, no <b>, no alert.
    assert page.eval("document.querySelectorAll('img:not(.leaflet-tile), b').length") == 0
    assert page.dialogs() == [] and page.errors() == []


def test_clicking_a_marker_opens_its_popup_with_the_figures(page: Page) -> None:
    page.eval(
        "document.querySelector('path.grade-poor').dispatchEvent(new MouseEvent('click', {bubbles: true}))"
    )
    page.wait_for(f"{POPUP} && {POPUP}.querySelector('h3').textContent === {json.dumps(LIZAC.name)}")
    text = page.eval(f"{POPUP}.textContent")
    assert "failed 1 (off 40 min in all)" in text and "0 % usable for online procedures" in text
    assert page.errors() == []


def test_a_column_header_sorts_the_table(page: Page) -> None:
    visits = "[...document.querySelectorAll('#sites tbody tr')].map(r => Number(r.cells[4].dataset.sort))"
    header = "[...document.querySelectorAll('#sites th button')].find(b => b.textContent === 'visits')"
    page.eval(f"{header}.click()")
    ascending = page.eval(visits)
    assert ascending == sorted(ascending) and ascending[0] == 0
    page.eval(f"{header}.click()")
    assert page.eval(visits) == sorted(ascending, reverse=True)
    assert page.errors() == []


def test_without_leaflet_the_table_is_still_complete(browser: Browser, maps: tuple[Path, Path]) -> None:
    cdn = browser.open((maps[1] / "stops.html").as_uri())
    cdn.wait_for(f"{NOTE}.startsWith('The map library (Leaflet) could not be loaded')")
    assert cdn.eval(ROW_IDS) == [f["id"] for f in features(maps[1])]
    assert any("unpkg.com/leaflet@1.9.4" in url for url in cdn.network_failures())
    assert cdn.errors() == [] and cdn.dialogs() == []


def test_the_browser_harness_reports_script_errors_and_dialogs(browser: Browser, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<script>alert('hello'); console.error('bad'); null.x;</script>", encoding="utf-8")
    opened = browser.open(broken.as_uri())
    opened.wait_for("true")
    assert opened.dialogs() == ["hello"]
    errors = opened.errors()
    assert any(e.startswith("console.error") for e in errors) and any("TypeError" in e for e in errors)
