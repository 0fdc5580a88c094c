"""Rate control helpers shared by the codec backends.

Ratios here are pixel ratios: uncompressed stored bytes (BitsAllocated) over encoded bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

TOLERANCE = 0.05  # achieved ratio within +-5 % of target where the target is reachable


def within(achieved: float, target: float) -> bool:
    return abs(achieved / target - 1.0) <= TOLERANCE


def search_step(
    encode: Callable[[float], bytes],
    pixel_bytes: int,
    target: float,
    *,
    first_step: float,
    max_encodes: int = 8,
) -> tuple[bytes, float, int]:
    """Find a quantisation step whose encode lands within tolerance of ``target``.

    The ratio grows monotonically with the step, roughly as a power law, so the search
    interpolates in log-log space (secant) and falls back to bisection inside a bracket.
    Returns the best codestream, its step and the number of encodes used.
    """
    tried: list[tuple[float, float, bytes]] = []  # (log step, log ratio, data)
    step = first_step
    for count in range(1, max_encodes + 1):
        data = encode(step)
        ratio = pixel_bytes / len(data)
        tried.append((math.log(step), math.log(ratio), data))
        if within(ratio, target):
            return data, step, count
        step = math.exp(_next_log_step(tried, math.log(target)))
    best = min(tried, key=lambda t: abs(t[1] - math.log(target)))
    return best[2], math.exp(best[0]), max_encodes


def _next_log_step(tried: list[tuple[float, float, bytes]], goal: float) -> float:
    below = [t for t in tried if t[1] < goal]
    above = [t for t in tried if t[1] > goal]
    if below and above:  # bracketed: secant between the closest points on either side
        lo = max(below, key=lambda t: t[1])
        hi = min(above, key=lambda t: t[1])
        if hi[1] - lo[1] > 1e-9:
            guess = lo[0] + (goal - lo[1]) * (hi[0] - lo[0]) / (hi[1] - lo[1])
            if not _bracketed(tried[:-1], goal):
                # the first interpolation is taken as is: on a power law it lands on the goal
                # (measured: r20 on CT took 3.75 encodes per frame with the nudge below, 2.9
                # without)
                return guess
            mid = (lo[0] + hi[0]) / 2
            # an interpolation already missed: nudge towards the middle so the bracket shrinks
            return 0.8 * guess + 0.2 * mid
    if len(tried) >= 2:  # one-sided: extrapolate the slope of the last two points
        (s0, r0, _), (s1, r1, _) = tried[-2], tried[-1]
        slope = (r1 - r0) / (s1 - s0) if abs(s1 - s0) > 1e-12 else 0.0
        if slope > 0.05:
            return s1 + max(-3.0, min(3.0, (goal - r1) / slope))
    last_step, last_ratio, _ = tried[-1]
    # first move: assume ratio ~ step^0.93 (measured on the sample CT with OpenJPH)
    return last_step + max(-3.0, min(3.0, (goal - last_ratio) / 0.93))


def _bracketed(tried: list[tuple[float, float, bytes]], goal: float) -> bool:
    return any(t[1] < goal for t in tried) and any(t[1] > goal for t in tried)
