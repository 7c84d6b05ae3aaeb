"""The [stops] and [probes] sections reach the core and the probes; a bad catalog is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, parse_config
from agent.probes import DEFAULT_PORTAL_URLS
from agent.runtime.settings import load_catalog, probe_params, stop_params, suite_config

MINIMAL = '[agent]\nvehicle_id = "bus-01"\n'


def test_defaults_probe_the_portals_without_a_speed_test() -> None:
    config = parse_config(MINIMAL)
    suite = suite_config(config.probes)
    assert suite.http.urls == DEFAULT_PORTAL_URLS
    assert suite.dns.server is None, "the system resolver by default"
    assert suite.throughput is None, "no speed-test server configured: no throughput test"
    assert probe_params(config.probes).interval_s == 1800.0
    assert stop_params(config.stops).dwell_s == 300.0


def test_probe_section_overrides_reach_the_probes_and_the_scheduler() -> None:
    config = parse_config(
        MINIMAL
        + "[probes]\n"
        + 'http_urls = ["https://www.service-public.fr/"]\n'
        + 'dns_server = "9.9.9.9"\n'
        + 'speedtest_url = "https://speed.example.org/"\n'
        + "speedtest_length_s = 3\n"
        + "interval_min = 20\n"
        + "daily_budget_mb = 50\n"
        + "[stops]\ndwell_s = 420\n"
    )
    suite = suite_config(config.probes)
    assert suite.http.urls == ("https://www.service-public.fr/",)
    assert suite.dns.server == "9.9.9.9"
    assert suite.throughput is not None and suite.throughput.length_s == 3.0
    params = probe_params(config.probes)
    assert (params.interval_s, params.daily_budget_bytes) == (1200.0, 50_000_000)
    assert stop_params(config.stops).dwell_s == 420.0


def test_bad_probe_urls_are_named() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + '[probes]\nhttp_urls = ["ftp://x"]\nspeedtest_url = "speed"\n', "bus.toml")
    assert [e.split(": ")[0] for e in info.value.errors] == [
        "bus.toml:probes.http_urls",
        "bus.toml:probes.speedtest_url",
    ]


def test_catalog_is_loaded_from_the_configured_file(tmp_path: Path) -> None:
    catalog = tmp_path / "stops.toml"
    catalog.write_text('[[sites]]\nname = "La Poste, Caylus"\nlat = 44.236\nlon = 1.771\nradius_m = 80\n')
    config = parse_config(MINIMAL + f'[stops]\ncatalog = "{catalog}"\n')
    site = load_catalog(config.stops).match(44.2361, 1.7711)
    assert site is not None and site.name == "La Poste, Caylus"


def test_missing_or_invalid_catalog_names_the_file(tmp_path: Path) -> None:
    config = parse_config(MINIMAL + f'[stops]\ncatalog = "{tmp_path / "absent.toml"}"\n')
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read the stop catalog"):
        load_catalog(config.stops)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sites]]\nname = "X"\nlat = 95\nlon = 1\n')
    config = parse_config(MINIMAL + f'[stops]\ncatalog = "{bad}"\n')
    with pytest.raises(ConfigError) as info:
        load_catalog(config.stops)
    assert info.value.errors[0].startswith(f"{bad}:sites[0].lat")
