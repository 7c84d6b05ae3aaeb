"""A seeded mutation engine: hostile words, JSON values and byte-level damage, fast enough for 100k inputs.

Hypothesis draws only a seed (and the builders draw everything else from ``random.Random(seed)``),
because drawing nested structures through hypothesis costs ~25 ms per input, which would make a
100k-input soak take an hour per parser. A failing input is still reproducible: hypothesis prints
the seed, and the builder gives back the same bytes for it.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from tests.reliability.fuzzing import NUMBERISH_WORDS

seeds = st.integers(0, 2**64 - 1)

#: Bytes that mean something to one parser or another: line ends, separators, delimiters, escapes.
SPECIAL_BYTES = b"\x00\r\n\t ,;:*$!^+\"'<>&[]{}\\\x7f\x80\xff\xfe\xef\xbb\xbf"
WORDS = [
    *NUMBERISH_WORDS,
    "A",
    "V",
    "N",
    "S",
    "E",
    "W",
    "T",
    "M",
    "K",
    "OK",
    "ERROR",
    "null",
    "true",
    "<a>",
    "&amp;",
]
# Integers at the edges: 2**53 (exact in a double), 2**63/2**64 (SQLite and C), a 300-digit one.
EDGE_INTS = [0, -1, 1, 2**31 - 1, 2**31, -(2**31) - 1, 2**53, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**300]
EDGE_FLOATS = [0.0, -0.0, 1e308, -1e308, 5e-324, 0.1, 1e16, float("nan"), float("inf"), float("-inf")]


class Mutator:
    """Everything hostile a builder needs, drawn from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, items: Sequence[Any]) -> Any:
        return items[self.rng.randrange(len(items))]

    def word(self) -> str:
        """A field value a device should not send: junk numbers, long digit runs, odd characters."""
        kind = self.rng.randrange(8)
        if kind <= 2:
            return str(self.pick(WORDS))
        if kind == 3:
            return "".join(self.rng.choices(string.digits, k=self.rng.choice([1, 2, 9, 16, 20, 320, 4400])))
        if kind == 4:
            return str(self.rng.randint(-(10**12), 10**12))
        if kind == 5:
            return repr(self.rng.uniform(-1e6, 1e6))
        if kind == 6:
            return "".join(self.rng.choices(string.printable, k=self.rng.randrange(12)))
        return "".join(map(chr, self.rng.choices(range(0x20, 0x3000), k=self.rng.randrange(6))))

    def json_scalar(self) -> Any:
        kind = self.rng.randrange(6)
        if kind == 0:
            return self.pick([None, True, False])
        if kind == 1:
            return self.pick(EDGE_INTS)
        if kind == 2:
            return self.pick(EDGE_FLOATS)
        if kind == 3:
            return self.rng.randint(-1000, 1000)
        return self.word()

    def json_value(self, depth: int = 0) -> Any:
        """Any JSON value; now and then nested hundreds of levels deep."""
        roll = self.rng.random()
        if roll < 0.02:
            return self.deep(self.rng.choice([30, 65, 200, 900, 1500]))
        if depth >= 4 or roll < 0.55:
            return self.json_scalar()
        if roll < 0.8:
            return [self.json_value(depth + 1) for _ in range(self.rng.randrange(5))]
        return {self.word(): self.json_value(depth + 1) for _ in range(self.rng.randrange(5))}

    def deep(self, levels: int) -> Any:
        value: Any = self.json_scalar()
        for _ in range(levels):
            value = [value] if self.chance(0.5) else {"k": value}
        return value

    def mutate_bytes(self, data: bytes, rounds: int | None = None) -> bytes:
        """``data`` with 1-4 byte-level injuries: flips, inserts, deletions, repeats, truncation."""
        buf = bytearray(data)
        for _ in range(rounds if rounds is not None else self.rng.randint(1, 4)):
            self._injure(buf)
        return bytes(buf)

    def _injure(self, buf: bytearray) -> None:
        at = self.rng.randrange(len(buf) + 1)
        kind = self.rng.randrange(8)
        if kind == 0 and at < len(buf):
            buf[at] ^= 1 << self.rng.randrange(8)
        elif kind == 1 and at < len(buf):
            buf[at] = self.rng.randrange(256)
        elif kind == 2:
            buf[at:at] = bytes([self.pick(SPECIAL_BYTES)])
        elif kind == 3:
            buf[at:at] = self.rng.randbytes(self.rng.randint(1, 8))
        elif kind == 4:
            del buf[at : at + self.rng.randint(1, 16)]
        elif kind == 5:  # repeat a slice, sometimes many times (runs, floods)
            piece = bytes(buf[at : at + self.rng.randint(1, 40)])
            buf[at:at] = piece * self.rng.choice([1, 2, 10, 100])
        elif kind == 6:
            del buf[at:]
        else:
            other = self.rng.randrange(len(buf) + 1)
            a, b = min(at, other), max(at, other)
            buf[a:b] = bytes(reversed(buf[a:b]))
