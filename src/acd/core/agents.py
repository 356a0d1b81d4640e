"""Agents: presence, per-channel slots, and the visible state derived from both.

An agent's state has two independent parts, the way real ACDs keep them:

* **presence**, set by the agent (or the calendar): ``offline``, ``ready``,
  ``not_ready`` (with a reason).  Transitions are the table ``PRESENCE``
  below; anything not in it is refused, never guessed.
* **slots**, set by routing: per channel, how many contacts the agent holds
  (offered and ringing, talking, or in wrap-up); in all channels together, how
  many are in each of those three phases.  A channel is available when
  presence is ready, its slots are below capacity, and no channel that blocks it
  has a contact (by default voice blocks chat and email; chats never block
  voice, so a chat backlog cannot lock an agent out of calls).

The *visible* state reported on the bus is derived, in this order:
``offered`` if any offer rings, else ``busy`` if talking, else ``wrap_up``,
else the presence.  So an agent who goes not-ready during a call shows
``busy`` until the call and its wrap-up end, then ``not_ready``.
"""

from __future__ import annotations

from typing import Any

from .events import CHANNELS

# presence values (small ints: compared on every routing decision)
OFFLINE, READY, NOT_READY = 0, 1, 2
PRESENCE_NAMES = ("offline", "ready", "not_ready")

# (presence, command) -> new presence.  Missing pairs are refused with the
# reason in PRESENCE_REFUSALS.  "not_ready" while not ready only changes reason.
PRESENCE: dict[tuple[int, str], int] = {
    (OFFLINE, "login"): READY,  # login with a reason lands in NOT_READY
    (READY, "not_ready"): NOT_READY,
    (NOT_READY, "not_ready"): NOT_READY,
    (NOT_READY, "ready"): READY,
    (READY, "ready"): READY,
    (READY, "logout"): OFFLINE,
    (NOT_READY, "logout"): OFFLINE,
}
PRESENCE_REFUSALS: dict[tuple[int, str], str] = {
    (READY, "login"): "agent is already logged in",
    (NOT_READY, "login"): "agent is already logged in",
    (OFFLINE, "ready"): "agent is offline; log in first",
    (OFFLINE, "not_ready"): "agent is offline; log in first",
    (OFFLINE, "logout"): "agent is already logged out",
}

CH_INDEX = {name: i for i, name in enumerate(CHANNELS)}


class Agent:
    """Mutable routing state of one agent.  Owned by the engine; plain slots
    because the engine touches these fields several times per contact."""

    __slots__ = (
        "id", "idx", "group", "skills", "attributes", "cap", "blocked_by", "max_missed",
        "presence", "reason", "state",
        "used", "n_offered", "n_talking", "n_wrapping",
        "ver", "pushed", "since", "pools", "chans",
        "missed", "last_offer", "iv", "iv_count", "busy", "staffed", "busy_since", "busy_iv", "staffed_since",
        "contacts", "pool_list", "keyver", "site", "auto_answer", "only_ch",
        "expected", "expected_since", "adherent", "adherent_since",
    )

    def __init__(self, idx: int, agent_id: str, group: int, skills: dict[str, int],
                 attributes: dict[str, Any], cap: tuple[int, int, int],
                 blocking: dict[str, list[str]], max_missed: int, site: str | None = None):
        self.id = agent_id
        self.idx = idx
        self.group = group
        self.skills = dict(skills)
        self.attributes = dict(attributes)
        self.cap = list(cap)
        # blocked_by[ch]: channels whose use makes channel ch unavailable
        self.blocked_by: list[tuple[int, ...]] = [
            tuple(CH_INDEX[b] for b, blocked in blocking.items() if CHANNELS[ch] in blocked and b != CHANNELS[ch])
            for ch in range(len(CHANNELS))
        ]
        self.max_missed = max_missed
        self.site = site
        self.auto_answer = False
        # schedule adherence (groups with a calendar): None = no schedule
        self.expected: bool | None = None
        self.expected_since = 0.0
        self.adherent = False
        self.adherent_since = 0.0
        self.presence = OFFLINE
        self.reason: str | None = None
        self.state = "offline"
        self.used = [0, 0, 0]  # contacts held per channel (offered + talking + wrap-up)
        self.n_offered = 0
        self.n_talking = 0
        self.n_wrapping = 0
        # Idle-index bookkeeping per channel: `ver` invalidates stale heap
        # entries; `pushed` is the `keyver` last indexed (None: not indexed,
        # i.e. unavailable); `keyver` counts changes to what the strategies
        # key on (load, last offer); `since` when it last became available.
        self.ver = [0, 0, 0]
        self.pushed: list[int | None] = [None, None, None]
        self.keyver = 0
        self.since = [0.0, 0.0, 0.0]
        self.pools: tuple[list, list, list] = ([], [], [])
        self.chans: tuple[int, ...] = ()
        self.only_ch = -1  # the channel, when the agent serves exactly one (a fast path)
        self.missed = 0
        self.last_offer = 0
        self.iv = -1
        self.iv_count = 0
        self.busy = False
        self.staffed = False
        self.busy_since = 0.0
        self.busy_iv = 0  # the KPI interval of busy_since
        self.staffed_since = 0.0
        self.pool_list: list = []  # all pools over all channels
        self.contacts: dict[str, Any] = {}

    def available(self, ch: int) -> bool:
        """Can this agent be offered one more contact on channel ``ch``?"""
        if self.presence != READY or self.used[ch] >= self.cap[ch]:
            return False
        used = self.used
        for b in self.blocked_by[ch]:
            if used[b]:
                return False
        return True

    def visible_state(self) -> str:
        if self.n_offered:
            return "offered"
        if self.n_talking:
            return "busy"
        if self.n_wrapping:
            return "wrap_up"
        return PRESENCE_NAMES[self.presence]

    def add_pool(self, ch: int, pool: Any) -> None:
        self.pools[ch].append(pool)
        self.pool_list.append(pool)
        if ch not in self.chans:
            self.chans = tuple(sorted(self.chans + (ch,)))
            # With one channel nothing else is ever held, so nothing blocks it.
            self.only_ch = self.chans[0] if len(self.chans) == 1 else -1

    def __repr__(self) -> str:
        return f"<Agent {self.id} {self.state} used={self.used}>"
