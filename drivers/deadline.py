"""One time budget for a whole driver read: every step waits only for what is left of it.

A read is several blocking steps (name lookup, connect, send, many small receives, several
commands). Giving each step its own timeout lets a device that answers just in time at every step
hold a read for a multiple of the configured time; passing one :class:`Deadline` down to all of
them keeps the promise made to the technician ("no answer within 2 s").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Deadline:
    """The instant a read must be over by, and the budget it was given."""

    def __init__(self, budget_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        # A NaN or negative budget would make every comparison false (wait forever) or be
        # meaningless: both mean "no time at all".
        self.budget_s = budget_s if math.isfinite(budget_s) and budget_s > 0 else 0.0
        self._clock = clock
        self.at = clock() + self.budget_s

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self.at

    def left(self) -> float:
        """Seconds left for one blocking call (always > 0: a 0 timeout would make a socket
        non-blocking); TimeoutError when the budget is spent."""
        left = self.at - self._clock()
        if left <= 0:
            raise TimeoutError(f"budget of {self.budget_s:g} s spent")
        return left

    def cap(self, wait_s: float) -> float:
        """``wait_s`` shortened to what is left of the budget."""
        return min(wait_s, self.remaining())
