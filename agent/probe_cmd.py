"""`agentctl probe`: read every configured device once, without the daemon, and print the result."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.config import ConfigError, load_config
from agent.render import device_line


def read_all(config_path: str) -> dict[str, dict[str, Any]]:
    """Read each configured device once, in parallel (a dead printer must not delay the GPS)."""
    from drivers.factory import build_drivers
    from drivers.snapshots import to_dict

    drivers = build_drivers(load_config(config_path))

    def read_one(name: str) -> tuple[str, dict[str, Any]]:
        driver = drivers[name]
        try:
            return name, to_dict(driver.read())
        finally:
            driver.close()

    with ThreadPoolExecutor(max_workers=max(1, len(drivers))) as pool:
        results = dict(pool.map(read_one, drivers))
    return {name: results[name] for name in drivers}


def format_table(results: dict[str, dict[str, Any]], colour: bool) -> str:
    width = max((len(n) for n in results), default=6)
    lines = []
    for name, snap in results.items():
        ok = bool(snap.get("ok"))
        mark = "OK  " if ok else "FAIL"
        if colour:
            mark = f"\x1b[32m{mark}\x1b[0m" if ok else f"\x1b[31;1m{mark}\x1b[0m"
        lines.append(f"{name:<{width}}  {mark}  {device_line(name, snap)}")
    return "\n".join(lines)


def run_probe(config_path: str, *, as_json: bool) -> int:
    """Exit 0 only when every configured device answered; 1 when one did not; 2 on a bad config."""
    try:
        results = read_all(config_path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    if not results:
        print(f"{config_path}: no devices configured (add [gps], [modem], [power], [printer], [system])")
        return 1
    if as_json:
        print(json.dumps(results, indent=2, sort_keys=False))
    else:
        print(format_table(results, colour=sys.stdout.isatty()))
    return 0 if all(s.get("ok") for s in results.values()) else 1
