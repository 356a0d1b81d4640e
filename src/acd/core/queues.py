"""Contacts and the pools they wait in.

A **pool** is one routing class: a queue at one escalation step (and, when a
contact brings its own required skills, those skills).  Its set of eligible
agents is fixed when the pool is built, so each pool keeps

* ``waiting``: a heap of the contacts waiting for it, and
* ``idle``: the strategy index of its agents who are free right now.

Within a pool, contacts are ordered by *effective priority*
``priority + aging * (now - entered)``.  All contacts of a pool share one aging
rate, so that order never changes with time: the heap key
``aging * entered - priority`` is fixed at entry, and ties fall back to the
arrival sequence (FIFO within a priority).  A requeued contact is pushed back
with its old key and sequence: it returns to its place, never to the back.

Heap entries are ``(key, seq, version, contact)``; a contact that leaves the
pool (offered, abandoned, escalated, overflowed) bumps its version, which
invalidates the entry lazily.  ``n_waiting`` is the live count.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Any

# contact states
NEW, WAITING, OFFERED, CONNECTED, WRAP_UP, ENDED = range(6)
CONTACT_STATE_NAMES = ("new", "waiting", "offered", "connected", "wrap_up", "ended")


class Contact:
    """One contact's routing state, alive from arrival to the end of wrap-up."""

    __slots__ = (
        "id", "seq", "queue", "ch", "base_priority", "priority", "skills", "skill_key", "attributes",
        "arrival", "iv", "entered", "entry", "step", "pool", "key", "ver", "state",
        "agent", "offers", "excluded", "connected_at", "ended_at", "talk", "acc",
    )

    def __init__(self, contact_id: str, seq: int, ch: int, priority: float,
                 skills: dict[str, int], attributes: dict[str, Any], arrival: float, iv: int):
        # queue, entered, step, priority, key, pool and acc are set on entering
        # a queue; agent, connected_at, ended_at and talk when they happen.
        self.id = contact_id
        self.seq = seq
        self.ch = ch
        self.base_priority = priority
        self.skills = skills
        self.skill_key = tuple(sorted(skills.items())) if skills else None
        self.attributes = attributes
        self.arrival = arrival
        self.iv = iv
        self.entry = 0
        self.ver = 0
        self.state = NEW
        self.agent: Any = None
        self.offers = 0
        self.excluded: set[str] | None = None

    def __repr__(self) -> str:
        return f"<Contact {self.id} {CONTACT_STATE_NAMES[self.state]} q={self.queue.name if self.queue else None}>"


class Pool:
    """Waiting contacts and free agents of one routing class."""

    __slots__ = ("queue", "step", "skill_key", "ch", "rate", "agents", "idle", "waiting", "n_waiting", "limit")

    def __init__(self, queue: Any, step: int, skill_key: Any, ch: int, agents: list[Any], idle: Any):
        self.queue = queue
        self.step = step
        self.skill_key = skill_key
        self.ch = ch
        self.rate = queue.aging_per_s
        self.agents = agents  # eligible agents, fixed
        self.idle = idle
        self.waiting: list[tuple] = []
        self.n_waiting = 0
        self.limit = 64

    def push(self, contact: Contact) -> None:
        """Put a waiting contact in (its ``ver`` was bumped by the caller)."""
        heappush(self.waiting, (contact.key, contact.seq, contact.ver, contact))
        self.n_waiting += 1
        if len(self.waiting) > self.limit:
            self.compact()

    def compact(self) -> None:
        self.waiting = [e for e in self.waiting if e[2] == e[3].ver]
        heapify(self.waiting)
        self.limit = 2 * len(self.waiting) + 64

    def peek_for(self, agent_id: str) -> tuple | None:
        """The best waiting entry this agent may take (skips contacts that
        this agent already rejected), or None."""
        heap = self.waiting
        while heap:
            entry = heap[0]
            contact = entry[3]
            if entry[2] != contact.ver:
                heappop(heap)
                continue
            excluded = contact.excluded
            if excluded is None or agent_id not in excluded:
                return entry
            return self._peek_slow(agent_id)
        return None

    def _peek_slow(self, agent_id: str) -> tuple | None:
        heap, aside, found = self.waiting, [], None
        while heap:
            entry = heappop(heap)
            contact = entry[3]
            if entry[2] != contact.ver:
                continue
            aside.append(entry)
            if contact.excluded is None or agent_id not in contact.excluded:
                found = entry
                break
        for entry in aside:
            heappush(heap, entry)
        return found

    def waiting_contacts(self) -> list[Contact]:
        """Live waiting contacts in routing order (O(n log n): checks only)."""
        return [e[3] for e in sorted(e for e in self.waiting if e[2] == e[3].ver)]

    def __repr__(self) -> str:
        return f"<Pool {self.queue.name}#{self.step} {self.skill_key} waiting={self.n_waiting}>"
