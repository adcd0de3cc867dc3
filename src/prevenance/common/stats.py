"""The few statistical formulas several domains share, written once: the normal quantiles and
distribution function, and the Wilson score interval of a proportion (sound for small samples and
for 0% or 100%, which is why every rate the product shows uses it)."""

from __future__ import annotations

import math
from statistics import NormalDist

Z_95 = 1.959963984540054  # the 97.5th percentile of the standard normal distribution


def z_for(level: float) -> float:
    """The two-sided standard-normal quantile of a confidence level (1.96 for 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError("level must lie strictly between 0 and 1")
    return Z_95 if level == 0.95 else NormalDist().inv_cdf(0.5 + level / 2)


def normal_cdf(x: float) -> float:
    """Standard normal distribution function."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def wilson_bounds(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of ``successes`` out of ``n`` (``n`` ≥ 1), clipped to [0, 1]."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError("need n >= 1 and 0 <= successes <= n")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
