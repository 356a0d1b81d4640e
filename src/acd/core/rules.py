"""Routing rules compiled from a Spec, once, when the engine is built.

For every queue this fixes the *rings* of targets: ring 0 is the queue's
skills and expression; ring k (after escalation step k) is the union of ring
k-1 and the step's target, so a step only ever adds agents (a Genesys-style
bullseye).  Contacts that bring required skills of their own narrow every ring
with them (``pool_target``).  Expressions are parsed here, never per event.
"""

from __future__ import annotations

from typing import Any

from .events import CHANNELS
from .expr import Target, all_of, any_of, compile_expression, skills_target
from .spec import Queue, Spec, known_names


class QueueRule:
    """A queue's compiled settings; ``idx`` is its position in the config."""

    __slots__ = (
        "name", "idx", "ch", "channel", "strategy", "priority", "aging_per_s", "threshold", "sl_target",
        "wrap_up", "ring_timeout", "max_wait", "overflow", "rings", "step_after", "step_priority",
        "base_pool", "fts", "open", "closed_rule", "pref",
    )

    def __init__(self, q: Queue, idx: int, rings: list[Target], steps: list[tuple[float, float]]):
        self.name = q.name
        self.idx = idx
        self.channel = q.channel
        self.ch = CHANNELS.index(q.channel)
        self.strategy = q.strategy
        self.priority = q.priority
        self.aging_per_s = q.aging / 60.0
        self.threshold = q.service_level.threshold
        self.sl_target = q.service_level.target
        self.wrap_up = q.wrap_up
        self.ring_timeout = q.ring_timeout
        self.max_wait = q.max_wait
        self.overflow: QueueRule | None = None  # linked after all queues exist
        self.rings = rings
        self.step_after = [after for after, _ in steps]
        # cumulative priority boost at step k (index 0 = no escalation yet)
        boost, acc = [0.0], 0.0
        for _, prio in steps:
            acc += prio
            boost.append(acc)
        self.step_priority = boost
        self.base_pool: Any = None  # the engine's pool for step 0, no extra skills
        # Calendar state, kept up to date by the engine from the calendar's
        # transitions: open or closed (and the rule while closed), and the
        # preferred sites of a follow-the-sun queue (``fts``), whose step 0
        # targets the first preferred site only.
        self.fts = q.sites is not None and q.site_escalation is not None
        self.open = True
        self.closed_rule: Any = None
        self.pref: tuple[str, ...] = ()

    def step_at(self, waited: float) -> int:
        """Escalation step reached after ``waited`` seconds in the queue."""
        k = 0
        for after in self.step_after:
            if waited >= after:
                k += 1
            else:
                break
        return k

    def __repr__(self) -> str:
        return f"<QueueRule {self.name}>"


def compile_rules(spec: Spec) -> list[QueueRule]:
    skills, attrs = known_names(spec)
    rules = []
    for idx, q in enumerate(spec.queues):
        base = [skills_target(q.skills)]
        if q.target is not None:
            base.append(compile_expression(q.target, skills, attrs))
        ring = all_of(base)
        rings = [ring]
        steps: list[tuple[float, float, Any]] = [(s.after, s.priority, s) for s in q.escalation]
        if q.sites is not None and q.site_escalation is not None:
            # follow-the-sun: step 0 keeps to the preferred site; this step
            # (or any escalation step before it) lifts that restriction.
            steps.append((q.site_escalation, 0.0, None))
            steps.sort(key=lambda s: (s[0], s[2] is not None))
        for _, _, step in steps:
            parts = []
            if step is not None and step.skills is not None:
                parts.append(skills_target(step.skills))
            if step is not None and step.target is not None:
                parts.append(compile_expression(step.target, skills, attrs))
            if parts:
                ring = any_of([ring, all_of(parts)])
            rings.append(ring)
        rules.append(QueueRule(q, idx, rings, [(after, prio) for after, prio, _ in steps]))
    by_name = {r.name: r for r in rules}
    for q, r in zip(spec.queues, rules):
        if q.overflow is not None:
            r.overflow = by_name[q.overflow]
    return rules


def pool_target(rule: QueueRule, step: int, contact_skills: Any) -> Target:
    """The target of a pool: the queue's ring at ``step`` and, if the contact
    requires skills, those too."""
    ring = rule.rings[step]
    if not contact_skills:
        return ring
    return all_of([ring, skills_target(dict(contact_skills))])


def proficiency(target: Target, skills: dict[str, int]) -> int:
    """Most-skilled score of an agent for a target: sum of its levels in the
    skills the target mentions (all its skills when it mentions none)."""
    names = target.skills or tuple(skills)
    return sum(skills.get(n, 0) for n in names)
