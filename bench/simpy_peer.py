"""The SimPy peer of the replay benchmark: one queue, c agents, FIFO, optional abandonment.

A minimal, idiomatic SimPy model (what a competent SimPy user would write,
after the "bank renege" example of the SimPy docs): ``simpy.Resource(capacity=c)``,
a source process that releases contacts at their recorded arrival times, one
process per contact that requests an agent and, if the contact has a
patience, waits with ``yield req | env.timeout(patience)``.  It reads the same
JSONL scenario the router replays and prints the same KPIs as one JSON object:

    python bench/simpy_peer.py SCENARIO --agents 100 [--threshold 20] [--json]

Scenario lines: ``{"id": "c1", "arrival": 12.5, "queue": "support",
"handle_time": 183.2, "patience": 95.1}`` (arrival in seconds from the start;
``patience`` missing or null = waits forever).  Lines whose ``type`` is not
``contact`` (e.g. a ``{"type": "scenario", ...}`` header) are ignored.  Every
contact goes to the one pool of agents, whatever its ``queue``.

KPIs (the replay's definitions): wait = service start - arrival;
ASA = mean wait of answered; P(wait) = share of contacts whose wait > 0
(an abandoner waited > 0 unless its patience was 0); service level = answered
with wait <= threshold / offered; abandon rate = abandoned / offered.
``seconds`` is the wall time of the whole run from reading the file to the
KPIs (interpreter start-up and imports excluded; time the process from
outside for those).  ``--json`` prints the object on one line instead of
indented.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import msgspec
import simpy


class Line(msgspec.Struct):
    """One scenario line; unknown fields (and header fields) are ignored."""

    type: str = "contact"
    id: str | int | None = None
    arrival: float | None = None
    queue: str | None = None
    handle_time: float | None = None
    patience: float | None = None


class _TypeOnly(msgspec.Struct):
    type: str = "contact"


CONTACT_TYPES = ("contact", "contact.arrived")


def read_contacts(path: str) -> list[Line]:
    """The contact lines of a JSONL scenario, sorted by arrival."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        lines = msgspec.json.Decoder(Line).decode_lines(data)
    except msgspec.ValidationError:
        # a header or other record whose fields clash with Line's types:
        # look at each line's type first
        type_dec = msgspec.json.Decoder(_TypeOnly)
        line_dec = msgspec.json.Decoder(Line)
        lines = [
            line_dec.decode(raw)
            for raw in data.splitlines()
            if raw.strip() and type_dec.decode(raw).type in CONTACT_TYPES
        ]
    contacts = [ln for ln in lines if ln.type in CONTACT_TYPES]
    for ln in contacts:
        if ln.arrival is None or ln.handle_time is None:
            raise ValueError(f"contact {ln.id!r}: 'arrival' and 'handle_time' are required")
    contacts.sort(key=lambda ln: ln.arrival)
    return contacts


class Stats:
    def __init__(self) -> None:
        self.answered = 0
        self.abandoned = 0
        self.waited = 0  # contacts with wait > 0
        self.total_wait_answered = 0.0
        self.answered_within = 0


def contact(env: simpy.Environment, agents: simpy.Resource, c: Line, threshold: float, stats: Stats):
    arrived = env.now
    with agents.request() as req:
        if c.patience is None:
            yield req
        else:
            result = yield req | env.timeout(c.patience)
            if req not in result:
                stats.abandoned += 1
                if env.now > arrived:
                    stats.waited += 1
                return
        wait = env.now - arrived
        stats.answered += 1
        stats.total_wait_answered += wait
        if wait > 0:
            stats.waited += 1
        if wait <= threshold:
            stats.answered_within += 1
        yield env.timeout(c.handle_time)


def source(env: simpy.Environment, agents: simpy.Resource, contacts: list[Line], threshold: float, stats: Stats):
    for c in contacts:
        if c.arrival > env.now:
            yield env.timeout(c.arrival - env.now)
        env.process(contact(env, agents, c, threshold, stats))


def run(path: str, n_agents: int, threshold: float = 20.0) -> dict:
    t0 = time.perf_counter()
    contacts = read_contacts(path)
    env = simpy.Environment()
    agents = simpy.Resource(env, capacity=n_agents)
    stats = Stats()
    env.process(source(env, agents, contacts, threshold, stats))
    env.run()
    n = len(contacts)
    seconds = time.perf_counter() - t0
    return {
        "contacts": n,
        "answered": stats.answered,
        "abandoned": stats.abandoned,
        "asa": stats.total_wait_answered / stats.answered if stats.answered else 0.0,
        "p_wait": stats.waited / n if n else 0.0,
        "service_level": stats.answered_within / n if n else 0.0,
        "abandon_rate": stats.abandoned / n if n else 0.0,
        "seconds": seconds,
        "contacts_per_s": n / seconds if seconds > 0 else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", help="JSONL scenario file")
    parser.add_argument("--agents", type=int, required=True, help="number of identical agents")
    parser.add_argument("--threshold", type=float, default=20.0, help="service-level threshold, seconds")
    parser.add_argument("--json", action="store_true", help="print the JSON object on one line")
    args = parser.parse_args(argv)
    if args.agents < 1:
        parser.error("--agents must be >= 1")
    result = run(args.scenario, args.agents, args.threshold)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
