"""Kaplan-Meier survival of customer patience, and thinning the curve.

Recorded waits are right-censored patience: a caller who abandoned after
``w`` seconds had patience ``w`` (an *event*); a caller who was answered after
``w`` seconds would have waited at least ``w`` (*censored*).  The
Kaplan-Meier estimate

    S(t) = prod over event times t_i <= t of (1 - d_i / n_i)

(``d_i`` events at ``t_i``, ``n_i`` callers still waiting just before ``t_i``)
is the standard non-parametric estimate of P(patience > t) under independent
censoring.  Ties follow the usual convention: events at ``t`` happen before
censorings at ``t`` (a caller answered at ``t`` was still at risk at ``t``).
"""

from __future__ import annotations

from collections.abc import Iterable


def kaplan_meier(observations: Iterable[tuple[float, bool]]) -> list[tuple[float, float]]:
    """``[(t, S(t))]`` at each distinct event time, ``t`` increasing, from
    ``(time, is_event)`` pairs.  Empty when there is no event (nobody was
    seen to abandon: the curve would be 1 everywhere)."""
    events: dict[float, int] = {}
    censored: dict[float, int] = {}
    n = 0
    for t, ev in observations:
        t = float(t)
        if t < 0:
            raise ValueError(f"negative time {t:g}")
        d = events if ev else censored
        d[t] = d.get(t, 0) + 1
        n += 1
    curve: list[tuple[float, float]] = []
    s = 1.0
    at_risk = n
    for t in sorted(set(events) | set(censored)):
        d = events.get(t, 0)
        if d:
            s *= 1.0 - d / at_risk
            curve.append((t, s))
        at_risk -= d + censored.get(t, 0)
    return curve


def interpolate(curve: list[tuple[float, float]], t: float) -> float:
    """S(t) read the way ``acd.scenario.draw_patience`` reads a curve:
    piecewise linear through (0, 1) and the points, flat after the last."""
    t0, s0 = 0.0, 1.0
    for t1, s1 in curve:
        if t <= t1:
            return s0 if t1 == t0 else s0 + (s1 - s0) * (t - t0) / (t1 - t0)
        t0, s0 = t1, s1
    return s0


def thin(curve: list[tuple[float, float]], tolerance: float = 0.002, max_points: int = 64) -> list[tuple[float, float]]:
    """A shorter curve that stays within ``tolerance`` of every point of
    ``curve`` (read piecewise linear), widening the tolerance until it has at
    most ``max_points`` points.  The first and last points are kept, so the
    support and the tail level do not move.

    Why: the replay reads the curve once per censored contact, in time linear
    in its length; a month of records has hundreds of distinct event times
    per type, and a step of a few thousandths in S changes nothing measurable.
    """
    if len(curve) <= 2:
        return [(float(t), round(s, 6)) for t, s in curve]
    tol = tolerance
    while True:
        out = _greedy(curve, tol)
        if len(out) <= max_points:
            return [(float(t), round(s, 6)) for t, s in out]
        tol *= 1.5


def _greedy(curve: list[tuple[float, float]], tol: float) -> list[tuple[float, float]]:
    pts = [(0.0, 1.0)] + list(curve)
    kept = [pts[0]]
    i = 0
    n = len(pts)
    while i < n - 1:
        # the farthest j such that the chord i..j stays within tol of every point between
        j = i + 1
        while j + 1 < n and _fits(pts, i, j + 1, tol):
            j += 1
        kept.append(pts[j])
        i = j
    return kept[1:]


def _fits(pts: list[tuple[float, float]], i: int, j: int, tol: float) -> bool:
    (ti, si), (tj, sj) = pts[i], pts[j]
    if tj == ti:
        return all(abs(pts[k][1] - si) <= tol for k in range(i + 1, j))
    slope = (sj - si) / (tj - ti)
    for k in range(i + 1, j):
        tk, sk = pts[k]
        if abs(si + slope * (tk - ti) - sk) > tol:
            return False
    return True


def median(curve: list[tuple[float, float]]) -> float | None:
    """The time where the (piecewise linear) curve crosses 0.5, or None when
    it stays above."""
    t0, s0 = 0.0, 1.0
    for t1, s1 in curve:
        if s1 <= 0.5:
            return t1 if s0 == s1 else t0 + (s0 - 0.5) * (t1 - t0) / (s0 - s1)
        t0, s0 = t1, s1
    return None
