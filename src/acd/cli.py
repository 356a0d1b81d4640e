"""The ``acd`` command line: ``main(argv) -> exit code``.

Exit codes: 0 success, 1 failure at run time (e.g. an output cannot be
written), 2 bad input (a config, a scenario or the arguments) -- always with a
one-line reason on stderr and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Sequence

import msgspec

from . import __version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Build only the chosen command's arguments: each imports its own
    # modules, and `acd replay` should not pay for the daemon's.
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    parser = _parser(chosen)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("acd: interrupted", file=sys.stderr)
        return 130


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


def _build_check(c: argparse.ArgumentParser) -> None:
    c.add_argument("config", metavar="CONFIG")
    c.set_defaults(func=cmd_check)


def _build_replay(r: argparse.ArgumentParser) -> None:
    r.add_argument("config", metavar="CONFIG")
    r.add_argument("scenario", metavar="SCENARIO")
    r.add_argument("--json", action="store_true", help="print the KPI report as one JSON object")
    r.add_argument("--seed", type=int, default=0, help="seed of the random strategy (default 0)")
    r.add_argument("--events", metavar="FILE", help="write every event and decision as JSON Lines")
    r.add_argument("--answer-delay", type=float, default=0.0, metavar="S",
                   help="seconds agents take to answer an offer (default 0)")
    r.add_argument("--intervals", action="store_true", help="also print the per-interval table")
    r.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    r.add_argument("--report", metavar="FILE", help="also write an HTML report with charts (one self-contained file)")
    r.add_argument("--live", metavar="BUS_URL",
                   help="instead of replaying offline, play the scenario onto a running daemon's bus "
                        "(mqtt://host:port) as the telephony side")
    r.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="with --live: scenario seconds per wall-clock second (default 1, real time)")
    r.add_argument("--tenant", default="default", help="with --live: the daemon's tenant (default: default)")
    # (the flag of acd.recorded.cli.add_compare_arguments, without importing the importer)
    r.add_argument("--compare-recorded", nargs="?", const="auto", default=None, metavar="RECORDED.json",
                   help="print the recorded KPIs of an imported log beside the replayed ones, per call type "
                        "and hour (default file: SCENARIO.recorded.json, written by acd scenario import)")
    r.set_defaults(func=cmd_replay)


def _build_compare(cmp: argparse.ArgumentParser) -> None:
    from .compare import add_compare_arguments, run_compare

    add_compare_arguments(cmp)
    cmp.set_defaults(func=run_compare)


def _build_run(rn: argparse.ArgumentParser) -> None:
    from .daemon import add_run_arguments, run_command

    add_run_arguments(rn)
    rn.set_defaults(func=run_command)


def _build_calendar(k: argparse.ArgumentParser) -> None:
    from .calendar_cli import add_calendar_arguments, run_calendar

    add_calendar_arguments(k)
    k.set_defaults(func=run_calendar)


def _build_schema(sc: argparse.ArgumentParser) -> None:
    sc.add_argument("--output", "-o", metavar="FILE", default="-", help="where to write (default: stdout)")
    sc.set_defaults(func=cmd_schema)


def _build_scenario(s: argparse.ArgumentParser) -> None:
    ssub = s.add_subparsers(metavar="ACTION")
    g = ssub.add_parser("generate", help="synthetic traffic (Poisson arrivals)",
                        description="Generate synthetic traffic: Poisson arrivals, exponential or lognormal "
                                    "handle times, exponential patience; seeded.")
    from .recorded.cli import add_import_arguments, run_import
    from .scenario import add_generate_arguments, run_generate

    add_generate_arguments(g)
    g.set_defaults(func=run_generate)
    im = ssub.add_parser("import", help="recorded call logs (CSV/TSV) -> scenario, config, recorded KPIs",
                         description="Import a recorded call log (one row per call): a scenario with the "
                                     "customers' patience, the roster as agent lines and a config, and the "
                                     "recorded KPIs for replay --compare-recorded.")
    add_import_arguments(im)
    im.set_defaults(func=run_import)
    s.set_defaults(func=lambda a: (s.print_help(sys.stderr), 2)[1])


#: name -> (help, description, builder)
COMMANDS = {
    "check": ("validate a routing config", "Validate a routing config.", _build_check),
    "replay": ("replay a scenario through the router in virtual time",
               "Replay a scenario through the routing core in virtual time and report KPIs.", _build_replay),
    "compare": ("replay one scenario under several routing configs, side by side",
                "Replay one scenario under several routing configs, each in its own process with the same "
                "seed; show KPI deltas, which config meets each queue's service-level target, and "
                "(--report) the charts overlaid.", _build_compare),
    "run": ("run the routing daemon beside a telephony system (bus, journal, HTTP API)",
            "Route contacts in real time from a bus (in-process, stdio or MQTT), with a journal, an HTTP API "
            "and config reload.", _build_run),
    "calendar": ("staffing per interval and site that a config's calendar implies",
                 "Print the staffing per interval and site that the calendar implies.", _build_calendar),
    "scenario": ("make scenarios: generate synthetic traffic, import recorded call logs",
                 "Make traffic scenarios.", _build_scenario),
    "schema": ("print the JSON Schema of the bus messages", "Print the JSON Schema of every inbound and outbound "
               "message (the payloads on the bus).", _build_schema),
}


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acd", description="Contact-centre ACD and routing engine.")
    p.add_argument("--version", action="version", version=f"acd {__version__}")
    sub = p.add_subparsers(metavar="COMMAND")
    for name, (help_, description, build) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=description)
        if only is None or only == name:
            build(sp)
    return p


def _fail(message: str, code: int = 2) -> int:
    print(f"acd: {message}", file=sys.stderr)
    return code


def _load(path: str):
    from .config import ConfigError, load_config

    try:
        return load_config(path), None
    except ConfigError as exc:
        return None, "\n".join(str(e) for e in exc.errors)


def cmd_check(args: argparse.Namespace) -> int:
    spec, err = _load(args.config)
    if err:
        print(err, file=sys.stderr)
        return 2
    agents = sum(len(g.agent_ids()) for g in spec.agents)
    print(f"{args.config}: ok ({len(spec.queues)} queues, {len(spec.agents)} agent groups, {agents} agents)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import Replay
    from .scenario import Scenario, ScenarioError
    from .tables import interval_table, iso, kpi_table

    spec, err = _load(args.config)
    if err:
        print(err, file=sys.stderr)
        return 2
    try:
        scenario = Scenario(args.scenario)
        recorded = None
        if args.compare_recorded is not None:
            from .recorded.cli import compare_report, recorded_for_replay

            recorded = recorded_for_replay(args)
    except ValueError as exc:  # ScenarioError is a ValueError
        return _fail(str(exc))
    if args.answer_delay < 0:
        return _fail(f"--answer-delay: expected a number >= 0, got {args.answer_delay:g}")
    if args.live:
        return _replay_live(args, scenario)
    events = None
    if args.events:
        try:
            events = open(args.events, "wb")
        except OSError as exc:
            return _fail(f"{args.events}: {exc.strerror or exc}", 1)
    progress = None
    if not args.no_progress and sys.stderr.isatty():
        progress = _Progress(args.scenario)
    try:
        rep = Replay(spec, seed=args.seed, start=scenario.start, answer_delay=args.answer_delay,
                     events=events, progress=progress).run(scenario)
    except ScenarioError as exc:
        if progress:
            progress.clear()
        return _fail(str(exc))
    finally:
        if events is not None:
            events.close()
    if progress:
        progress.clear()
    for row in rep.get("intervals", []):
        row["start_iso"] = iso(row["start"])
    meta = rep["replay"]
    meta["scenario"] = args.scenario
    meta["config"] = args.config
    meta["seed"] = args.seed
    meta["start_iso"] = iso(meta["start"])
    comparison = compare_report(rep, recorded, as_json=args.json) if recorded is not None else None
    if args.report:
        from .report import write_report

        try:
            write_report(args.report, rep, config_path=args.config, spec=spec)
        except OSError as exc:
            return _fail(f"{args.report}: {exc.strerror or exc}", 1)
    if args.json:
        sys.stdout.write(msgspec.json.encode(rep).decode() + "\n")
        return 0
    print(f"acd replay: {args.scenario} with {args.config} (seed {args.seed})")
    print(f"{meta['contacts']:,} contacts from {iso(meta['start'])} to {iso(meta['end'])}, "
          f"replayed in {meta['wall_s']:.2f} s ({meta['contacts'] / max(meta['wall_s'], 1e-9):,.0f} contacts/s)")
    print()
    print(kpi_table(rep))
    if args.intervals:
        print()
        print(interval_table(rep))
    rejected = rep.get("rejected_inputs") or {}
    if rejected:
        print()
        print("rejected inputs: " + ", ".join(f"{k} {v}" for k, v in rejected.items()))
    if meta["in_system_at_end"]:
        print(f"\n{meta['in_system_at_end']} contacts were still waiting at the end (no agent could take them)")
    if comparison:
        print()
        print(comparison)
    return 0


def _replay_live(args: argparse.Namespace, scenario: Any) -> int:
    """``acd replay --live URL``: the scenario onto a running daemon's bus."""
    import asyncio

    from .bus.mqtt import BusError, parse_url
    from .live import play
    from .scenario import ScenarioError

    try:
        parse_url(args.live)
    except ValueError as exc:
        return _fail(f"--live: {exc}")
    if not args.speed > 0:
        return _fail(f"--speed: expected a number > 0, got {args.speed:g}")
    try:
        result = asyncio.run(play(args.live, scenario, scenario.start, tenant=args.tenant, speed=args.speed,
                                  answer_delay=args.answer_delay))
    except BusError as exc:
        return _fail(str(exc), 1)
    except ScenarioError as exc:
        return _fail(str(exc))
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        print(f"acd replay --live {args.live}: {args.scenario} at {args.speed:g}x")
        for key, value in result.items():
            print(f"  {key:<18} {value}")
    return 0 if not result["in_system_at_end"] else 1


def cmd_schema(args: argparse.Namespace) -> int:
    """JSON Schema of every bus payload, and which topic carries which."""
    from .bus import Topics
    from .core.events import INBOUND_TYPES, Inbound, Outbound

    (inbound, outbound), defs = msgspec.json.schema_components([Inbound, Outbound], ref_template="#/$defs/{name}")
    t = Topics("<tenant>")
    doc = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "acd bus messages",
        "description": "Payloads are JSON objects; inbound ones may omit `type` (the topic names it) and should "
                       "carry a unique `id` for de-duplication; outbound ones carry a `seq`. "
                       "out/event and out/metrics carry a JSON array (one or more) per message.",
        "topics": {
            **{t.inbound_for(cls.__struct_config__.tag): {"$ref": f"#/$defs/{cls.__name__}"}
               for cls in INBOUND_TYPES},
            t.decision: {"$ref": "#/$defs/ContactOffered"},
            t.event: {"type": "array", "items": {"$ref": "#/$defs/Outbound"}, "minItems": 1,
                      "description": "the events of one publish round, in seq order"},
            t.error: {"type": "object", "description": "a refused inbound message: topic, reason, detail, payload"},
            t.metrics: {"type": "array", "items": {"type": "object"}, "minItems": 1,
                        "description": "per contact (kind: contact) and per queue and interval; "
                                       "the metrics of one publish round"},
            t.status: {"enum": ["online", "offline"], "description": "retained; also the last will"},
        },
        "$defs": {**defs, "Inbound": inbound, "Outbound": outbound},
    }
    text = json.dumps(doc, indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w") as f:
                f.write(text)
        except OSError as exc:
            return _fail(f"{args.output}: {exc.strerror or exc}", 1)
    return 0


class _Progress:
    """A one-line progress bar on stderr, estimated from the file size."""

    def __init__(self, path: str):
        self.t0 = time.perf_counter()
        self.total = None
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                head = f.read(1 << 16)
            lines = head.count(b"\n")
            if lines > 10:
                self.total = int(size / (len(head) / lines))
        except OSError:
            pass
        self.shown = False

    def __call__(self, n: int, t: float) -> None:
        rate = n / max(time.perf_counter() - self.t0, 1e-9)
        if self.total:
            frac = min(n / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"[{bar:<30}] {frac:4.0%}  {n:,} contacts  {rate:,.0f}/s"
        else:
            text = f"{n:,} contacts  {rate:,.0f}/s"
        sys.stderr.write("\r" + text)
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


if __name__ == "__main__":  # python -m acd.cli
    sys.exit(main())
