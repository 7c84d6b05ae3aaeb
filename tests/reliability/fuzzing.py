"""Fuzz campaigns: how many inputs a parser took, the slowest one, a time bound per input, linear scaling.

Every fuzz test runs its inputs through a :class:`Campaign`: it times each input, keeps the count
and the slowest time, and fails when an input takes longer than :func:`budget_s` for its size even
when timed again (best of three, so a scheduler stall on a shared machine is not taken for a slow
parser). :func:`scaling` times one input family at 4 KiB, 64 KiB and 1 MiB and fails when the time
grows much faster than the size: a quadratic loop that stays invisible at the sizes hypothesis
draws shows up there at once.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.reliability.conftest import report, scale

KIB = 1024
#: What one input of 4 KiB may cost a parser, scaled with the input's size (never less than this).
BUDGET_S_PER_4KIB = 0.05
#: Growing the input 16 times may multiply the time by at most this (linear: 16; slack for caches).
MAX_GROWTH = 40
#: Times below this are measurement noise: the smaller input is taken as costing at least this much.
TIME_FLOOR_S = 0.0005


def fuzz_settings(short: int, soak: int = 100_000) -> settings:
    """Hypothesis settings for one campaign: ``short`` examples in `make test`, ``soak`` in `make soak`.

    No hypothesis deadline: the campaign applies its own, size-aware time bound.
    """
    return settings(
        max_examples=scale(short, soak),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Errors only: 100,000 rejected inputs would otherwise print 100,000 debug and warning lines."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        yield
    finally:
        structlog.configure(**saved)


def budget_s(size: int) -> float:
    """The time bound for one input of ``size`` bytes: 50 ms per 4 KiB, at least 50 ms."""
    return BUDGET_S_PER_4KIB * max(1.0, size / (4 * KIB))


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The shortest of ``runs`` timings of ``work()`` (the least disturbed by everything else)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


class Campaign:
    """Counts and times the inputs of one fuzz test; :meth:`report` prints its figures."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.examples = 0
        self.max_s = 0.0
        self.max_bytes = 0  # size of the slowest input
        self.largest = 0
        self.outcomes: dict[str, int] = {}
        self.started = time.monotonic()

    def run(self, size: int, work: Callable[[], Any], *, io_s: float = 0.0) -> Any:
        """``work()`` for one input of ``size`` bytes; fails when it stays over :func:`budget_s`.

        ``io_s`` is for work that talks to a peer (a read through a driver): the bound is then at
        least that, which still catches a read that waits for its timeout; such work is not
        repeated, the first timing is the one judged.
        """
        started = time.perf_counter()
        result = work()
        elapsed = time.perf_counter() - started
        self.examples += 1
        self.largest = max(self.largest, size)
        limit = max(budget_s(size), io_s)
        retime = io_s == 0.0
        if elapsed > limit and retime:
            elapsed = min(elapsed, best_of(3, work))
        assert elapsed <= limit, f"{self.name}: an input of {size} bytes took {elapsed * 1000:.1f} ms"
        if elapsed > self.max_s:
            self.max_s, self.max_bytes = elapsed, size
        return result

    def count(self, outcome: str) -> None:
        """Tally what became of an input (accepted, rejected, which error...), for the report."""
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def report(self, **extra: object) -> None:
        outcomes = ",".join(f"{k}:{v}" for k, v in sorted(self.outcomes.items(), key=lambda kv: -kv[1]))
        report(
            self.name,
            examples=self.examples,
            failures=0,
            wall_s=f"{time.monotonic() - self.started:.1f}",
            max_input_ms=f"{self.max_s * 1000:.2f}",
            slowest_input_bytes=self.max_bytes,
            largest_input_bytes=self.largest,
            **extra,
            **({"outcomes": outcomes} if outcomes else {}),
        )


def scaling(
    name: str,
    make: Callable[[int], Any],
    work: Callable[[Any], object],
    sizes: tuple[int, int, int] = (4 * KIB, 64 * KIB, 1024 * KIB),
) -> dict[str, str]:
    """Time ``work(make(n))`` for 4 KiB, 64 KiB and 1 MiB (or ``sizes``, each 16 times the one before);
    fail when one costs over ``MAX_GROWTH`` times the one before. Returns figures for the report."""
    inputs = [make(n) for n in sizes]
    # The cyclic collector is paused while timing: its full collections walk the whole heap of the
    # test process (pytest, hypothesis), a cost of this process, not of the parser, which made a
    # linear decoder look 27 times slower for 16 times the input.
    gc.collect()
    gc.disable()
    try:
        times = [best_of(3, functools.partial(work, data)) for data in inputs]
    finally:
        gc.enable()
    for i in range(len(sizes) - 1):
        growth = times[i + 1] / max(times[i], TIME_FLOOR_S)
        assert growth <= MAX_GROWTH, (
            f"{name}: {sizes[i + 1] // KIB} KiB took {times[i + 1] * 1000:.1f} ms, {growth:.0f} times "
            f"{sizes[i] // KIB} KiB ({times[i] * 1000:.2f} ms): worse than linear"
        )
    small, mid, big = (f"{n // KIB}k" for n in sizes)
    return {
        f"t_{small}_ms": f"{times[0] * 1000:.2f}",
        f"t_{mid}_ms": f"{times[1] * 1000:.2f}",
        f"t_{big}_ms": f"{times[2] * 1000:.1f}",
        f"growth_{mid}_over_{small}": f"{times[1] / max(times[0], TIME_FLOOR_S):.1f}",
        f"growth_{big}_over_{mid}": f"{times[2] / max(times[1], TIME_FLOOR_S):.1f}",
    }


# -- junk that breaks parsers: numbers that overflow, words that look like numbers, odd characters --

HUGE_DIGITS = "9" * 5000  # past int()'s 4300-digit limit, and a float overflows long before
NUMBERISH_WORDS = [
    "", "0", "-0", "+1", "1e999", "-1e999", "1e-999", "nan", "NaN", "inf", "-Infinity", "0x1F", "1_000",
    "٣", "²", "1.2.3", "--1", "99999999999999999999", HUGE_DIGITS, "-" + HUGE_DIGITS, "0." + HUGE_DIGITS,
    " 12 ", "\t-97\t", "1,5", "12dBm", "DL:", "DL:" + HUGE_DIGITS, "\x00", "\ufffd", "\U0001f4a9",
]  # fmt: skip
numberish = st.sampled_from(NUMBERISH_WORDS)
junk_text = st.one_of(
    numberish,
    st.text(max_size=40),
    st.text(alphabet="0123456789.-+eE,;:*$\"' \t\r\n", max_size=60),
    st.integers().map(str),
    st.floats().map(repr),
)


def finite_json(value: object) -> bool:
    """True when every float inside ``value`` (dataclass fields included) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite_json(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(finite_json(v) for v in value)
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return all(finite_json(getattr(value, name)) for name in fields)
    return True
