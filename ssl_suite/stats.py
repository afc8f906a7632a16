"""Means with 95% intervals over seeds, and differences paired by seed.

A comparison between objectives or attentions is a claim about a mean over training seeds; with
3 seeds the t-distribution (2 degrees of freedom) is the honest interval, wider than +- 2 std
errors. A paired difference (same seed, same data order and initialisation on both sides)
removes what the seed moves in both; a difference whose interval contains 0 is noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from scipy.stats import t as student_t


@dataclass(frozen=True)
class Interval:
    mean: float
    n: int
    std: float | None = None  # sample std (n - 1); None for one value
    low: float | None = None  # the 95% t-interval of the mean; None for one value
    high: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def text(self, digits: int = 2) -> str:
        if self.std is None:
            return f"{self.mean:.{digits}f} (n=1)"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def interval(values: Iterable[float | None], level: float = 0.95) -> Interval | None:
    """Mean, sample std and the ``level`` t-interval of the mean of ``values`` (None if empty)."""
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return None
    mean = statistics.fmean(numbers)
    if len(numbers) == 1:
        return Interval(mean, 1)
    std = statistics.stdev(numbers)
    half = student_t.ppf(0.5 + level / 2, len(numbers) - 1) * std / math.sqrt(len(numbers))
    return Interval(mean, len(numbers), std, mean - half, mean + half)


def paired_difference(a: dict, b: dict, level: float = 0.95) -> Interval | None:
    """Interval of a[s] - b[s] over the keys (seeds) both have."""
    common = sorted(set(a) & set(b))
    return interval([a[s] - b[s] for s in common if a[s] is not None and b[s] is not None], level)
