"""Shapes no v1 document may have, checked alike by the agent before sending and the collector on reading.

- **Nesting.** ``json.loads`` accepts arrays nested a few hundred levels deep, but encoding the
  same value again (the collector stores payloads with ``json.dumps``) or printing it in a schema
  error raises RecursionError a few stack frames further on. Agent documents nest fewer than ten
  levels; :data:`~agent.mqtt.limits.MAX_JSON_DEPTH` is the limit.
- **Expansion.** A batch column ``{"c": v}`` stands for ``count`` copies of ``v``: a 2 KB message of
  1000 records sharing a 2 MB string would be stored as 2 GB. The constant columns of a batch may
  add up to :data:`~agent.mqtt.limits.MAX_INFLATED_BYTES` once repeated, what one document may be.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.mqtt.limits import MAX_JSON_DEPTH


def too_deep(value: Any, text: bytes) -> bool:
    """True when arrays and objects in ``value`` (whose JSON is ``text``) nest past MAX_JSON_DEPTH."""
    if text.count(b"[") + text.count(b"{") <= MAX_JSON_DEPTH:
        return False  # cannot nest deeper than it has brackets: most documents stop here
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:  # iterative on purpose: recursion is what deep input breaks
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def constant_expansion(doc: Mapping[str, Any]) -> int:
    """Bytes of JSON the constant columns of a batch take once repeated ``count`` times (0 otherwise)."""
    count, meta, cols = doc.get("count"), doc.get("meta"), doc.get("cols")
    if doc.get("kind") != "batch" or not isinstance(count, int) or not isinstance(meta, dict):
        return 0  # not a batch, or not one the schema accepts: refused for that reason
    total = 0
    for column in [*meta.values(), *(cols.values() if isinstance(cols, dict) else ())]:
        if isinstance(column, dict) and "c" in column:
            total += len(json.dumps(column["c"], separators=(",", ":"), ensure_ascii=False).encode()) * count
    return total
