"""Agent-selection strategies, each an index of the available agents of a pool.

When a contact enters a pool, the pool's strategy index answers "which free
agent gets it?" in O(log n) without looking at the others:

``longest-idle`` (default)
    fewest contacts on the channel, then available the longest.
``most-skilled``
    highest proficiency in the target's skills (sum of levels), then as
    longest-idle.
``round-robin``
    the agent offered a contact least recently (agents that never had one
    first, in roster order): a rotation over whoever is free.
``least-occupied``
    fewest contacts offered in the current KPI interval, then as longest-idle.
    Counts restart each interval; the index re-keys itself lazily then.
``random``
    uniform among the free agents, drawn from the engine's seeded RNG.

Every index is *lazy*: an agent whose availability or key changed bumps its
per-channel version, which silently invalidates its old entries everywhere;
stale entries are dropped when they surface or by an occasional compaction,
so the heaps never grow beyond a small multiple of the pool's agents.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from random import Random
from typing import Any, Iterable

STRATEGIES = ("longest-idle", "most-skilled", "round-robin", "least-occupied", "random")


class HeapIndex:
    """Base: a heap of ``(*key, agent.idx, version, agent)`` entries."""

    __slots__ = ("ch", "heap", "limit", "size")

    def __init__(self, ch: int, size: int):
        self.ch = ch
        self.heap: list[tuple] = []
        self.size = size
        self.limit = 2 * size + 16

    def key(self, agent: Any, iv: int) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def add(self, agent: Any, iv: int) -> None:
        heappush(self.heap, self.key(agent, iv) + (agent.idx, agent.ver[self.ch], agent))
        if len(self.heap) > self.limit:
            self.compact()

    def compact(self) -> None:
        ch = self.ch
        self.heap = [e for e in self.heap if e[-2] == e[-1].ver[ch]]
        heapify(self.heap)
        self.limit = 2 * max(self.size, len(self.heap)) + 16

    def pop(self, excluded: Any, iv: int) -> Any:
        """Remove and return the best valid agent not in ``excluded``, or None."""
        heap = self.heap
        ch = self.ch
        while heap:
            entry = heap[0]
            agent = entry[-1]
            if entry[-2] != agent.ver[ch]:
                heappop(heap)
                continue
            if excluded and agent.id in excluded:
                return self._pop_excluding(excluded)
            heappop(heap)
            return agent
        return None

    def _pop_excluding(self, excluded: Any) -> Any:
        heap, ch, aside, found = self.heap, self.ch, [], None
        while heap:
            entry = heappop(heap)
            agent = entry[-1]
            if entry[-2] != agent.ver[ch]:
                continue
            if agent.id in excluded:
                aside.append(entry)
                continue
            found = agent
            break
        for entry in aside:
            heappush(heap, entry)
        return found

    def valid_agents(self) -> list[Any]:
        """The agents this index would offer to (for checks and snapshots)."""
        ch = self.ch
        return [e[-1] for e in self.heap if e[-2] == e[-1].ver[ch]]


_LOAD = 1e11  # seconds: one contact more outweighs any idle time (3,000 years)


class LongestIdle(HeapIndex):
    """Fewest contacts on the channel, then free the longest.  Both fold into
    one float (``since + load * 1e11``) so heap comparisons settle on the
    first element: this is the default strategy and the hottest index."""

    __slots__ = ()

    def key(self, agent: Any, iv: int) -> tuple:
        ch = self.ch
        return (agent.since[ch] + agent.used[ch] * _LOAD,)

    def add(self, agent: Any, iv: int) -> None:  # key inlined
        ch = self.ch
        heap = self.heap
        heappush(heap, (agent.since[ch] + agent.used[ch] * _LOAD, agent.idx, agent.ver[ch], agent))
        if len(heap) > self.limit:
            self.compact()


class MostSkilled(HeapIndex):
    __slots__ = ("score",)

    def __init__(self, ch: int, size: int, score: dict[int, int]):
        super().__init__(ch, size)
        self.score = score  # agent.idx -> proficiency for this pool's target

    def key(self, agent: Any, iv: int) -> tuple:
        ch = self.ch
        return (-self.score.get(agent.idx, 0), agent.used[ch], agent.since[ch])


class RoundRobin(HeapIndex):
    __slots__ = ()

    def key(self, agent: Any, iv: int) -> tuple:
        return (agent.last_offer,)


class LeastOccupied(HeapIndex):
    """Keys hold the interval's count; when the interval rolls over, every
    count is really 0, so the heap is re-keyed once before the next pop."""

    __slots__ = ("iv",)

    def __init__(self, ch: int, size: int):
        super().__init__(ch, size)
        self.iv = -1

    def key(self, agent: Any, iv: int) -> tuple:
        ch = self.ch
        return (agent.iv_count if agent.iv == iv else 0, agent.used[ch], agent.since[ch])

    def add(self, agent: Any, iv: int) -> None:
        if iv != self.iv:
            self._rekey(iv)
        super().add(agent, iv)

    def pop(self, excluded: Any, iv: int) -> Any:
        if iv != self.iv:
            self._rekey(iv)
        return super().pop(excluded, iv)

    def _rekey(self, iv: int) -> None:
        ch = self.ch
        self.iv = iv
        self.heap = [self.key(a, iv) + (a.idx, a.ver[ch], a) for a in self.valid_agents()]
        heapify(self.heap)


class RandomIndex:
    """A bag of ``(version, agent)``; pop draws uniformly and drops stale
    draws (rejection sampling keeps the draw uniform over valid agents)."""

    __slots__ = ("ch", "bag", "rng", "limit", "size")

    def __init__(self, ch: int, size: int, rng: Random):
        self.ch = ch
        self.bag: list[tuple[int, Any]] = []
        self.rng = rng
        self.size = size
        self.limit = 2 * size + 16

    def add(self, agent: Any, iv: int) -> None:
        self.bag.append((agent.ver[self.ch], agent))
        if len(self.bag) > self.limit:
            ch = self.ch
            self.bag = [e for e in self.bag if e[0] == e[1].ver[ch]]
            self.limit = 2 * max(self.size, len(self.bag)) + 16

    def pop(self, excluded: Any, iv: int) -> Any:
        bag, ch, aside = self.bag, self.ch, []
        found = None
        while bag:
            i = self.rng.randrange(len(bag))
            bag[i], bag[-1] = bag[-1], bag[i]
            ver, agent = bag.pop()
            if ver != agent.ver[ch]:
                continue
            if excluded and agent.id in excluded:
                aside.append((ver, agent))
                continue
            found = agent
            break
        bag.extend(aside)
        return found

    def valid_agents(self) -> list[Any]:
        ch = self.ch
        return [a for v, a in self.bag if v == a.ver[ch]]


def make_index(strategy: str, ch: int, agents: Iterable[Any], rng: Random, score: dict[int, int]) -> Any:
    """A fresh, empty index for a pool of ``agents`` (the engine fills it)."""
    size = len(list(agents)) if not hasattr(agents, "__len__") else len(agents)  # type: ignore[arg-type]
    if strategy == "longest-idle":
        return LongestIdle(ch, size)
    if strategy == "most-skilled":
        return MostSkilled(ch, size, score)
    if strategy == "round-robin":
        return RoundRobin(ch, size)
    if strategy == "least-occupied":
        return LeastOccupied(ch, size)
    if strategy == "random":
        return RandomIndex(ch, size, rng)
    raise ValueError(f"unknown strategy {strategy!r}")
