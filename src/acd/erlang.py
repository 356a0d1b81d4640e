"""Queueing formulas for checking the router: Erlang C (M/M/c) and Erlang A (M/M/c+M).

Pure Python (``math`` only).  These are steady-state numbers for one queue
served by ``c`` identical agents in FIFO order, Poisson arrivals at rate
``lambda``, exponential handle times with mean ``aht`` (``mu = 1/aht``) and, for
Erlang A, exponential patience with mean ``patience`` (``theta = 1/patience``).
All times (``aht``, ``patience``, ``threshold``, the results ``asa`` and
``asa_all``) are in one unit, the unit of ``1/arrival_rate``.

The quantities mean what the replay's KPIs mean (see :class:`ErlangResult`):
ASA = mean wait of *answered* contacts; service level = answered within the
threshold / offered; P(wait) = share of arrivals that find every agent busy
(= share that waits more than 0); abandon rate = abandoned / offered.
Occupancy here is busy time / available time of the ``c`` agents (no wrap-up).

Erlang C
--------
``A = lambda*aht`` Erlangs.  Erlang B by the stable recursion
``B(0) = 1, B(k) = A*B(k-1) / (k + A*B(k-1))`` (no factorials, no overflow for
c = 1000s; B may underflow to 0 when it is below 1e-308, which is exact to
double precision), then ``C = c*B / (c - A*(1 - B))`` = P(W > 0).  With
``W`` the wait in queue: ``P(W > t) = C*exp(-(c - A)*t/aht)``, so
``SL(T) = 1 - C*exp(-(c - A)*T/aht)`` and ``E[W] = C*aht/(c - A)``.  Every
contact is answered, so ASA = E[W].  Source: A. K. Erlang (1917); any
queueing text, e.g. Gross & Harris, *Fundamentals of Queueing Theory*, §2.3.

Erlang A (Palm 1943; Garnett, Mandelbaum & Reiman 2002)
-------------------------------------------------------
Number in system ``n`` is a birth-death chain with birth rate ``lambda`` and
death rate ``min(n, c)*mu + max(n - c, 0)*theta``.  With the states ``n <= c``
normalised the Erlang-B way (their mass is 1 and ``pi_c = B(c, A)``), the
states above ``c`` have ``pi_{c+k} = B * prod_{i=1..k} lambda/(c*mu + i*theta)``;
the sum is truncated once the remaining tail is below ~1e-19 of the total
(the ratios decrease in ``i``, so a geometric bound on the tail is exact),
and everything is carried in log space so c = 1000 or heavy overload do not
overflow.  By PASTA an arrival sees the stationary distribution, so

* ``p_wait  = sum_{k>=0} pi_{c+k}``                 (finds all agents busy)
* ``Lq      = sum_{k>=1} k*pi_{c+k}``
* ``P(ab)   = theta*Lq/lambda``                     (abandonment rate / arrival rate)
* ``E[W]    = Lq/lambda``                           (Little, over all arrivals)

A tagged arrival that finds ``c + j`` in the system has ``j`` customers
waiting ahead.  While ``i`` are ahead, it moves one place forward at rate
``c*mu + i*theta`` (a service completion takes the head, or one of the ``i``
ahead abandons) and abandons itself at rate ``theta``; at ``i = 0`` the next
service completion serves it.  Each stage therefore lasts ``Exp(c*mu +
(i+1)*theta)`` whatever ends it, and the product telescopes:

* ``P(served | j)           = c*mu / (c*mu + (j+1)*theta)``
* ``E[W | served, j]        = sum_{i=1..j+1} 1/(c*mu + i*theta)``
  (given it is served, every stage completed by moving forward; the stage
  durations are still the ``Exp(c*mu + i*theta)`` of the competing clocks)

Summing over ``j`` with weights ``pi_{c+j}`` gives ``E[W ; served]`` and
``asa = E[W | served] = E[W ; served] / (1 - P(ab))``.

For the waiting-time *distribution* the mixture over ``j`` has a closed form.
The hypoexponential law with rates ``a, a+theta, ..., a+j*theta`` has density
``prod(rates)/(theta^j j!) * exp(-a t) * (1 - exp(-theta t))^j`` (partial
fractions with arithmetic rates), and summing the Poisson-like series over
``j`` gives the defective densities (for ``t > 0``)

* served after waiting ``t``:   ``f_S(t) = pi_c*c*mu*exp(lambda*(1 - e^{-theta t})/theta - (c*mu + theta)*t)``
* offered wait ``V`` (time to reach an agent if infinitely patient):
  ``f_V(t) = pi_c*c*mu*exp(lambda*(1 - e^{-theta t})/theta - c*mu*t)``

(``f_S(t) = f_V(t)*exp(-theta t)``: served iff patience exceeds ``V``.  As
``theta -> 0`` both tend to the Erlang C density
``pi_c*c*mu*exp(-(c*mu - lambda)t)``.)  These match the M/M/n+M special case
of Mandelbaum & Zeltyn, *The M/M/n+G queue: summary of performance measures*
(Technion note, 2004/2009), where the same integrals appear as incomplete
gamma functions.  Then

* ``service_level = P(n < c) + integral_0^T f_S``   (served AND W <= T, over all arrivals)
* ``P(V > T)      = p_wait - integral_0^T f_V``
* ``abandon_within_threshold = P(abandon AND W <= T)
  = p_wait - integral_0^T f_S - exp(-theta T)*P(V > T)``
  (a waiting arrival, at time T, is either served, gone, or still waiting,
  and it is still waiting iff both V and its patience exceed T).

The integrands are log-concave in ``t`` (unimodal), so the integrals are
done by adaptive Gauss-Kronrod (7/15) on a support bracketed around the mode
in log space; they are accurate to ~1e-12, and the discrete sums above give an
independent cross-check (``P(n<c) + integral_0^inf f_S = 1 - P(ab)``, tested).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

__all__ = ["ErlangResult", "erlang_a", "erlang_b", "erlang_c"]

# Largest number of queue states summed before giving up (only reached with
# a vanishing abandonment rate in overload, where the model is ~unstable).
_MAX_QUEUE_STATES = 5_000_000
# Stop summing when the bound on the remaining tail is this far (natural log)
# below the running total: e^-44 ~ 8e-20.
_TAIL_LOG_MARGIN = 44.0


@dataclass(frozen=True, slots=True)
class ErlangResult:
    """Steady-state KPIs of one queue; times are in the unit of the inputs.

    Attributes:
        load: offered load ``A = arrival_rate * aht`` in Erlangs.
        agents: number of agents ``c``.
        threshold: the service-level threshold ``T`` used.
        p_wait: P(an arrival finds every agent busy) = P(W > 0) = share of
            contacts that wait more than 0 (abandoners included).
        asa: average speed of answer = mean wait of *answered* contacts,
            E[W | served].
        asa_all: mean wait over *all* arrivals, abandoners' time to abandon
            included, E[W] = Lq / arrival_rate (pyworkforce's Erlang A "ASA").
            Equal to ``asa`` for Erlang C.
        service_level: P(answered AND W <= T) over all arrivals = answered
            within the threshold / offered (abandoners count as failures).
        abandon_rate: P(abandon) = abandoned / offered (0 for Erlang C).
        abandon_within_threshold: P(abandon AND W <= T) over all arrivals
            (the "short abandons" some centres exclude; 0 for Erlang C).
        occupancy: busy time / available time of the agents =
            arrival_rate * (1 - abandon_rate) * aht / agents.
    """

    load: float
    agents: int
    threshold: float
    p_wait: float
    asa: float
    asa_all: float
    service_level: float
    abandon_rate: float
    abandon_within_threshold: float
    occupancy: float

    @property
    def answer_rate(self) -> float:
        """P(served) = answered / offered = 1 - abandon_rate."""
        return 1.0 - self.abandon_rate

    @property
    def service_level_of_answered(self) -> float:
        """Answered within T / answered (ContactCenters' ``g0``; 1 if nobody is answered)."""
        served = self.answer_rate
        return self.service_level / served if served > 0 else 1.0

    @property
    def service_level_excluding_short_abandons(self) -> float:
        """Answered within T / (offered - abandoned within T) (ContactCenters' ``g1``)."""
        denom = 1.0 - self.abandon_within_threshold
        return self.service_level / denom if denom > 0 else 1.0


# --- helpers ------------------------------------------------------------------


def _check(arrival_rate: float, aht: float, agents: int, threshold: float) -> None:
    if isinstance(agents, bool) or not isinstance(agents, int):
        raise TypeError(f"agents must be an int, got {agents!r}")
    if agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents}")
    if not (arrival_rate >= 0 and math.isfinite(arrival_rate)):
        raise ValueError(f"arrival_rate must be finite and >= 0, got {arrival_rate!r}")
    if not (aht > 0 and math.isfinite(aht)):
        raise ValueError(f"aht must be finite and > 0, got {aht!r}")
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")


def _idle(agents: int, threshold: float) -> ErlangResult:
    return ErlangResult(0.0, agents, threshold, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow."""
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


def _log_erlang_b(load: float, agents: int) -> float:
    """log B(c, A) by the recursion on 1/B in log space (never under/overflows).

    ``1/B(k) = 1 + (k/A) * 1/B(k-1)``, so ``y_k = log(1/B(k)) = softplus(log(k/A) + y_{k-1})``.
    """
    log_a = math.log(load)
    y = 0.0
    for k in range(1, agents + 1):
        x = math.log(k) - log_a + y
        y = x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))
    return -y


def erlang_b(load: float, agents: int) -> float:
    """Erlang B blocking probability B(c, A) of an M/M/c/c loss system (stable recursion)."""
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 0:
        raise ValueError(f"agents must be an int >= 0, got {agents!r}")
    if not load >= 0:
        raise ValueError(f"load must be >= 0, got {load!r}")
    b = 1.0
    for k in range(1, agents + 1):
        ab = load * b
        b = ab / (k + ab)
    return b


# Gauss-Kronrod 7/15 nodes and weights on [-1, 1] (QUADPACK qk15).
_XGK = (
    0.991455371120812639206854697526329,
    0.949107912342758524526189684047851,
    0.864864423359769072789712788640926,
    0.741531185599394439863864773280788,
    0.586087235467691130294144845693013,
    0.405845151377397166906606412076961,
    0.207784955007898467600689403773245,
    0.000000000000000000000000000000000,
)
_WGK = (
    0.022935322010529224963732008058970,
    0.063092092629978553290700663189204,
    0.104790010322250183839876322541518,
    0.140653259715525918745189590510238,
    0.169004726639267902826583426598550,
    0.190350578064785409913256402421014,
    0.204432940075298892414161999234649,
    0.209482141084727828012999174891714,
)
_WG = (  # Gauss weights for the nodes _XGK[1], _XGK[3], _XGK[5], _XGK[7]
    0.129484966168869693270611432679082,
    0.279705391489276667901467771423780,
    0.381830050505118944950369775488975,
    0.417959183673469387755102040816327,
)


def _gk15(f, a: float, b: float) -> tuple[float, float]:
    """One Gauss-Kronrod 7/15 panel: (Kronrod estimate, |Kronrod - Gauss|)."""
    half = 0.5 * (b - a)
    mid = 0.5 * (a + b)
    fc = f(mid)
    resk = fc * _WGK[7]
    resg = fc * _WG[3]
    for j in range(7):
        dx = half * _XGK[j]
        s = f(mid - dx) + f(mid + dx)
        resk += _WGK[j] * s
        if j & 1:
            resg += _WG[j >> 1] * s
    return resk * half, abs((resk - resg) * half)


def _integrate(f, breaks: list[float], rel_tol: float = 1e-13) -> float:
    """Globally adaptive Gauss-Kronrod over consecutive panels given by ``breaks``."""
    heap: list[tuple[float, float, float, float]] = []
    total = 0.0
    err = 0.0
    for a, b in zip(breaks, breaks[1:]):
        if b > a:
            v, e = _gk15(f, a, b)
            total += v
            err += e
            heap.append((-e, a, b, v))
    heapq.heapify(heap)
    for _ in range(2000):
        if not heap or err <= rel_tol * abs(total) + 1e-300:
            break
        ne, a, b, v = heapq.heappop(heap)
        m = 0.5 * (a + b)
        v1, e1 = _gk15(f, a, m)
        v2, e2 = _gk15(f, m, b)
        total += v1 + v2 - v
        err += e1 + e2 + ne
        heapq.heappush(heap, (-e1, a, m, v1))
        heapq.heappush(heap, (-e2, m, b, v2))
    return total


def _log_integral_exp_phi(lam: float, theta: float, beta: float, upper: float) -> float:
    """log of ``integral_0^upper exp(phi(t)) dt`` with
    ``phi(t) = lam*(1 - exp(-theta t))/theta - beta*t`` (concave in t).

    Returns -inf when ``upper == 0``.  ``upper`` may be ``inf``.
    """
    if upper <= 0:
        return -math.inf

    def phi(t: float) -> float:
        return -lam * math.expm1(-theta * t) / theta - beta * t

    # Mode of phi on [0, inf): phi'(t) = lam*exp(-theta t) - beta.
    t_mode = math.log(lam / beta) / theta if lam > beta else 0.0
    t_mode = min(t_mode, upper)
    ref = phi(t_mode)
    slope = abs(lam * math.exp(-theta * t_mode) - beta)
    curv = lam * theta * math.exp(-theta * t_mode)
    scale = 1.0 / max(slope, math.sqrt(curv), 1e-300)

    def g(t: float) -> float:
        return math.exp(phi(t) - ref)

    drop = -60.0  # e^-60 ~ 1e-26 of the peak: negligible
    # Breakpoints at geometric distances from the mode, on both sides, until
    # the integrand is negligible or the interval ends.
    right = [t_mode]
    step = scale
    while right[-1] < upper:
        t = min(t_mode + step, upper)
        right.append(t)
        if phi(t) - ref < drop:
            break
        step *= 2.0
    left = [t_mode]
    step = scale
    while left[-1] > 0.0:
        t = max(t_mode - step, 0.0)
        left.append(t)
        if phi(t) - ref < drop:
            break
        step *= 2.0
    breaks = left[::-1] + right[1:]
    value = _integrate(g, breaks)
    if value <= 0.0:
        return -math.inf
    return ref + math.log(value)


# --- Erlang C -------------------------------------------------------------------


def erlang_c(arrival_rate: float, aht: float, agents: int, threshold: float = 20.0) -> ErlangResult:
    """Erlang C (M/M/c): steady-state KPIs of ``agents`` agents, nobody abandons.

    Args:
        arrival_rate: Poisson arrival rate ``lambda`` (contacts per time unit).
        aht: mean (exponential) handle time, same time unit.
        agents: number of agents ``c``.
        threshold: service-level threshold ``T``, same time unit.

    Returns:
        :class:`ErlangResult` with ``p_wait = C(c, A)``,
        ``asa = asa_all = C*aht/(c - A)``,
        ``service_level = 1 - C*exp(-(c - A)*T/aht)``, ``abandon_rate = 0``,
        ``occupancy = A/c``.

    Raises:
        ValueError: if the load ``A = arrival_rate*aht >= agents`` (no steady state).
    """
    _check(arrival_rate, aht, agents, threshold)
    load = arrival_rate * aht
    if load == 0:
        return _idle(agents, threshold)
    if load >= agents:
        raise ValueError(f"unstable: load A = {load:g} Erlangs >= {agents} agents (Erlang C needs A < c)")
    b = erlang_b(load, agents)
    c_prob = agents * b / (agents - load * (1.0 - b))
    gap = agents - load
    asa = c_prob * aht / gap
    sl = 1.0 - c_prob * math.exp(-gap * threshold / aht)
    return ErlangResult(
        load=load,
        agents=agents,
        threshold=threshold,
        p_wait=c_prob,
        asa=asa,
        asa_all=asa,
        service_level=sl,
        abandon_rate=0.0,
        abandon_within_threshold=0.0,
        occupancy=load / agents,
    )


# --- Erlang A -------------------------------------------------------------------


def erlang_a(
    arrival_rate: float,
    aht: float,
    agents: int,
    patience: float,
    threshold: float = 20.0,
) -> ErlangResult:
    """Erlang A (M/M/c+M): Erlang C plus exponential patience with mean ``patience``.

    A waiting contact abandons when its patience (exponential, mean
    ``patience``, drawn at arrival) runs out before an agent takes it.  Stable
    for any load.  ``patience = inf`` is Erlang C (and raises for ``A >= c``);
    ``patience = 0`` is the Erlang B loss system (whoever finds all agents busy
    leaves at once, having waited 0).

    Args:
        arrival_rate: Poisson arrival rate ``lambda`` (contacts per time unit).
        aht: mean (exponential) handle time, same time unit.
        agents: number of agents ``c``.
        patience: mean patience ``1/theta``, same time unit.
        threshold: service-level threshold ``T``, same time unit.

    Returns:
        :class:`ErlangResult`: ``p_wait`` = P(finds all busy),
        ``abandon_rate`` = P(abandon), ``asa`` = E[W | served],
        ``asa_all`` = E[W] over all arrivals (= Lq/lambda),
        ``service_level`` = P(served AND W <= T),
        ``abandon_within_threshold`` = P(abandon AND W <= T),
        ``occupancy`` = lambda*(1 - P(ab))*aht/c.  Formulas in the module docstring.
    """
    _check(arrival_rate, aht, agents, threshold)
    if not patience >= 0:
        raise ValueError(f"patience must be >= 0, got {patience!r}")
    if patience == math.inf:
        return erlang_c(arrival_rate, aht, agents, threshold)
    load = arrival_rate * aht
    if load == 0:
        return _idle(agents, threshold)
    c = agents
    if patience == 0:
        b = erlang_b(load, c)
        return ErlangResult(
            load=load,
            agents=c,
            threshold=threshold,
            p_wait=b,
            asa=0.0,
            asa_all=0.0,
            service_level=1.0 - b,
            abandon_rate=b,
            abandon_within_threshold=b,
            occupancy=load * (1.0 - b) / c,
        )

    lam = arrival_rate
    theta = 1.0 / patience
    cmu = c / aht

    # Unnormalised log weights: states n <= c have total mass 1 (log 0),
    # log pi_c = log B, log pi_{c+k} = log B + sum_{i<=k} log(lam/(cmu + i theta)).
    log_b = _log_erlang_b(load, c)
    log_w = [log_b]  # log_w[k] = log pi_{c+k} (unnormalised), k = 0, 1, ...
    log_total = 0.0  # running log of (mass of n <= c) + sum_{k>=1} w_k, for the stopping rule
    cur = log_b
    log_lam = math.log(lam)
    if (lam - cmu) / theta > _MAX_QUEUE_STATES:
        raise ValueError(
            f"Erlang A: over {_MAX_QUEUE_STATES} queue states needed (load {load:g} on {c} agents "
            f"with mean patience {patience:g}); the patience is too long for this overload"
        )
    k = 0
    while True:
        k += 1
        if k > _MAX_QUEUE_STATES:
            raise ValueError(
                f"Erlang A: over {_MAX_QUEUE_STATES} queue states needed (load {load:g} on {c} agents "
                f"with mean patience {patience:g}); the patience is too long for this overload"
            )
        rate = cmu + k * theta
        cur += log_lam - math.log(rate)
        log_w.append(cur)
        log_total = _log_add(log_total, cur)
        r_next = lam / (rate + theta)  # ratio to the next term; decreasing in k
        if r_next < 1.0:
            # remaining sum <= w_k * r/(1-r); k-weighted sums need a little more room
            tail = cur + math.log(r_next / (1.0 - r_next))
            if tail < log_total - _TAIL_LOG_MARGIN:
                break

    # Normalise: shift by the largest log weight (it may exceed 709 in
    # overload), then sum accurately.
    shift = max(0.0, max(log_w))
    norm = shift + math.log(math.fsum([math.exp(-shift)] + [math.exp(lw - shift) for lw in log_w[1:]]))
    p_below = -math.expm1(log_b) * math.exp(-norm)  # P(n < c) = (1 - B)/Z
    p_wait = 0.0
    lq = 0.0
    served_waited = 0.0  # P(waited > 0 and served)
    wait_served = 0.0  # E[W ; served]
    harmonic = 0.0  # sum_{i=1..j+1} 1/(cmu + i theta)
    for j, lw in enumerate(log_w):
        p = math.exp(lw - norm)
        p_wait += p
        lq += j * p
        stage = cmu + (j + 1) * theta
        harmonic += 1.0 / stage
        ps = p * cmu / stage
        served_waited += ps
        wait_served += ps * harmonic

    p_wait = min(p_wait, 1.0)
    p_ab = min(theta * lq / lam, 1.0)
    p_served = 1.0 - p_ab
    asa = wait_served / p_served if p_served > 0 else 0.0
    asa_all = lq / lam

    # Waiting-time distribution by the closed-form densities (module docstring).
    log_pic_cmu = log_b - norm + math.log(cmu)
    if threshold > 0:
        served_within = math.exp(log_pic_cmu + _log_integral_exp_phi(lam, theta, cmu + theta, threshold))
        served_within = min(served_within, served_waited)
        v_within = math.exp(log_pic_cmu + _log_integral_exp_phi(lam, theta, cmu, threshold))
        v_beyond = max(p_wait - v_within, 0.0)  # P(V > T) (offered wait exceeds T)
        still_waiting = math.exp(-theta * threshold) * v_beyond if threshold < math.inf else 0.0
        ab_within = min(max(p_wait - served_within - still_waiting, 0.0), p_ab)
    else:
        served_within = 0.0
        ab_within = 0.0
    service_level = p_below + served_within

    return ErlangResult(
        load=load,
        agents=c,
        threshold=threshold,
        p_wait=p_wait,
        asa=asa,
        asa_all=asa_all,
        service_level=service_level,
        abandon_rate=p_ab,
        abandon_within_threshold=ab_within,
        occupancy=min(lam * p_served / cmu, 1.0),
    )
