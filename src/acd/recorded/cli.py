"""argparse glue: ``acd scenario import`` and ``acd replay --compare-recorded``.

``acd.cli`` wires these; nothing here prints a traceback for bad input:
``run_import`` returns 2 with a one-line reason on stderr (1 when an output
cannot be written), ``recorded_for_replay`` raises ``ValueError`` with a
one-line reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date as Date
from typing import Any

from .records import ANONYMOUS_BANK, FIELDS, FORMATS, RecordError, mapping_from_args, sniff_delimiter
from .roster import AVAILABILITY, RosterPolicy

_PROG = "acd scenario import"


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``acd scenario import``."""
    parser.add_argument("log", metavar="CALLS", help="call log, CSV or TSV, one row per call, a header row")
    parser.add_argument("-o", "--output", metavar="SCENARIO.jsonl", required=True, help="scenario to write")
    parser.add_argument("--config", metavar="CONFIG.yaml",
                        help="routing config to write (default: next to the scenario, SCENARIO.yaml)")
    parser.add_argument("--recorded", metavar="FILE.json",
                        help="recorded KPIs + import summary (default: SCENARIO.recorded.json; "
                             "what replay --compare-recorded reads)")
    parser.add_argument("--summary", metavar="FILE.json", help="also write the import summary alone as JSON")
    f = parser.add_argument_group("reading")
    f.add_argument("--format", default="auto", choices=("auto", "generic", *FORMATS),
                   help="column mapping preset; auto: anonymous-bank when the header has its 17 columns, "
                        "else generic (default auto)")
    f.add_argument("--map", action="append", metavar="FIELD=COLUMN",
                   help=f"map a field to a column (repeatable; FIELD= drops a preset's); fields: {', '.join(FIELDS)}")
    f.add_argument("--delimiter", metavar="C", help="cell delimiter: tab, comma, semicolon or one character "
                                                   "(default: tab for .tsv, else guessed from the header)")
    f.add_argument("--date", metavar="YYYY-MM-DD", help="the day of clock times when the log has no date column")
    f.add_argument("--priority-map", metavar="RAW=P,...",
                   help="priority cell -> acd priority (anonymous-bank: 0=0,1=0,2=1.5)")
    f.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day to import")
    f.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day to import")
    f.add_argument("--skip-bad", action="store_true",
                   help="skip malformed rows (counted, line numbers in the summary) instead of stopping at the first")
    r = parser.add_argument_group("roster and policy assumptions")
    r.add_argument("--availability", choices=AVAILABILITY, default="relative",
                   help="agents between services (see acd.recorded.roster): relative = the time they did not take "
                        "waiting calls becomes after-call work (wrap-up) of their call types (default); observed = "
                        "not ready at those recorded times; exact = not ready in every gap; shift = always ready")
    r.add_argument("--shift-gap", type=float, default=3600.0, metavar="S",
                   help="a longer gap between an agent's services ends its shift (default 3600)")
    r.add_argument("--login-lead", type=float, default=0.0, metavar="S",
                   help="log in this long before a shift's first service (default 0)")
    r.add_argument("--grace", type=float, default=10.0, metavar="S",
                   help="observed/exact: seconds after a service, and of a call's wait, before the agent "
                        "counts as not taking calls (default 10)")
    r.add_argument("--break-gap", type=float, default=None, metavar="S",
                   help="relative: a pause longer than this stays a not-ready period at its recorded time "
                        "instead of after-call time (default: --shift-gap, i.e. every pause inside a shift)")
    r.add_argument("--shift-skills", action="store_true",
                   help="a shift drops a type the agent had but clearly did not serve in it (its share predicted "
                        ">= 3 calls), as a separate agent id NAME[TYPES] (default: one skill set per agent)")
    r.add_argument("--min-skill-share", type=float, default=0.0, metavar="F",
                   help="leave out call types below this share of an agent's calls (default 0: every type served)")
    r.add_argument("--wrap-up", type=float, default=0.0, metavar="S", help="wrap-up after each call (default 0)")
    r.add_argument("--strategy", default="longest-idle",
                   choices=("longest-idle", "most-skilled", "round-robin", "least-occupied", "random"),
                   help="agent selection of every queue (default longest-idle)")
    r.add_argument("--aging", type=float, default=1.0, metavar="P",
                   help="priority points per minute of waiting (default 1: FIFO, priority = head start in minutes)")
    r.add_argument("--queue-priority", metavar="TYPE=P,...",
                   help="priority of a call type's queue, in minutes of head start with --aging 1 "
                        "(e.g. NW=-2: prospects after customers who called up to 2 minutes later)")
    r.add_argument("--abandoned-patience", choices=("observed", "curve"), default="observed",
                   help="abandoned calls: patience = their recorded wait (default), or drawn from the curve")
    o = parser.add_argument_group("output")
    o.add_argument("--no-attributes", action="store_true", help="no outcome/customer/agent attributes per contact")
    o.add_argument("--name", help="scenario name (default: the output file's stem)")
    o.add_argument("--description", help="scenario description (anonymous-bank: the data attribution)")
    o.add_argument("--quiet", action="store_true", help="do not print the import summary")


def _day(flag: str, text: str | None) -> Date | None:
    if text is None:
        return None
    try:
        return Date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag}: expected YYYY-MM-DD, got {text!r}") from None


def _detect(path: str, delimiter: str | None) -> str:
    """auto: anonymous-bank when the header has its columns."""
    m = ANONYMOUS_BANK
    try:
        delim = sniff_delimiter(path, mapping_from_args(m.name, None, delimiter=delimiter))
        with open(path, encoding="utf-8-sig", newline="") as f:
            head = [h.strip() for h in f.readline().rstrip("\r\n").split(delim)]
    except (OSError, UnicodeDecodeError):
        return "anonymous-bank"  # read_calls reports the real problem
    needed = {c for spec in m.columns.values() for c in spec.split(",")}
    return "anonymous-bank" if needed <= set(head) else "generic"


def options_from_args(args: argparse.Namespace):
    """``(mapping, ImportOptions)`` from the parsed flags; raises ValueError."""
    from .importer import ImportOptions

    for flag, v in (("--shift-gap", args.shift_gap), ("--grace", args.grace), ("--break-gap", args.break_gap or 0)):
        if not v >= 0:
            raise ValueError(f"{flag}: expected a number >= 0, got {v:g}")
    if not args.login_lead >= 0:
        raise ValueError(f"--login-lead: expected a number >= 0, got {args.login_lead:g}")
    if not args.wrap_up >= 0:
        raise ValueError(f"--wrap-up: expected a number >= 0, got {args.wrap_up:g}")
    if not args.aging >= 0:
        raise ValueError(f"--aging: expected a number >= 0, got {args.aging:g}")
    if not 0 <= args.min_skill_share <= 1:
        raise ValueError(f"--min-skill-share: expected a share from 0 to 1, got {args.min_skill_share:g}")
    fmt = args.format
    if fmt == "auto":
        fmt = _detect(args.log, args.delimiter)
        if fmt == "generic" and not args.map:
            raise ValueError(f"{args.log}: not the anonymous-bank columns; give --map FIELD=COLUMN "
                             "(at least arrival) or --format")
    mapping = mapping_from_args(fmt, args.map, delimiter=args.delimiter, priority_map=args.priority_map,
                                date=args.date)
    qp: dict[str, float] = {}
    for part in (args.queue_priority or "").split(","):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        try:
            if not sep or not k.strip():
                raise ValueError
            qp[k.strip()] = float(v)
        except ValueError:
            raise ValueError(f"--queue-priority: expected TYPE=NUMBER,..., got {args.queue_priority!r}") from None
    opt = ImportOptions(
        queue_priority=qp,
        skip_bad=args.skip_bad,
        date_from=_day("--from", args.date_from),
        date_to=_day("--to", args.date_to),
        roster=RosterPolicy(shift_gap=args.shift_gap, login_lead=args.login_lead, availability=args.availability,
                            grace=args.grace, min_skill_share=args.min_skill_share,
                            break_gap=args.break_gap, shift_skills=args.shift_skills),
        abandoned_patience=args.abandoned_patience,
        aging=args.aging,
        wrap_up=args.wrap_up,
        strategy=args.strategy,
        attributes=not args.no_attributes,
        name=args.name,
        description=args.description,
    )
    return mapping, opt


def run_import(args: argparse.Namespace) -> int:
    """``acd scenario import``: 0 on success, 2 on a bad log or bad flags,
    1 when an output cannot be written."""
    from .importer import default_paths, import_records, summary_text

    out = args.output
    if out == "-" or out.lower().endswith((".csv", ".tsv")):
        print(f"{_PROG}: error: -o: give a .jsonl file name (the import also writes a config and a sidecar)",
              file=sys.stderr)
        return 2
    cfg_default, side_default = default_paths(out)
    config = args.config or cfg_default
    sidecar = args.recorded or side_default
    try:
        mapping, opt = options_from_args(args)
        for path in (out, config, sidecar):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        res = import_records(args.log, mapping, opt, scenario=out, config=config, sidecar=sidecar)
    except (RecordError, ValueError) as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{_PROG}: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.summary:
        try:
            with open(args.summary, "w", encoding="utf-8") as f:
                json.dump(res.summary, f, indent=1)
                f.write("\n")
        except OSError as exc:
            print(f"{_PROG}: error: {args.summary}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if not args.quiet:
        print(summary_text(res))
        print(f"wrote {out} ({res.summary['contacts']:,} contacts, {res.summary['roster']['agent_lines']:,} agent "
              f"lines), {config}, {sidecar} in {res.seconds:.2f} s")
        print(f"replay: acd replay {config} {out} --compare-recorded")
    return 0


# --- acd replay --compare-recorded -----------------------------------------

AUTO = "auto"


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """``--compare-recorded [RECORDED.json]`` for ``acd replay``."""
    parser.add_argument("--compare-recorded", nargs="?", const=AUTO, default=None, metavar="RECORDED.json",
                        help="print the recorded KPIs of an imported log beside the replayed ones, per call type "
                             "and hour (default file: SCENARIO.recorded.json, written by acd scenario import)")


def load_recorded(path: str) -> dict[str, Any]:
    """The sidecar JSON; raises ValueError with a one-line reason."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (acd scenario import writes it next to the scenario)") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    rec = data.get("recorded") if isinstance(data, dict) else None
    if not isinstance(rec, dict) or not all(k in rec for k in ("total", "queues", "hours")):
        raise ValueError(f"{path}: not a recorded-KPI file (no recorded.total/queues/hours)")
    return data


def recorded_for_replay(args: argparse.Namespace) -> dict[str, Any] | None:
    """Before the replay: the sidecar named by ``--compare-recorded`` (or
    next to the scenario), None without the flag; raises ValueError."""
    flag = getattr(args, "compare_recorded", None)
    if flag is None:
        return None
    from .importer import default_paths

    path = default_paths(args.scenario)[1] if flag == AUTO else flag
    return load_recorded(path)


def compare_report(report: dict[str, Any], recorded: dict[str, Any], *, as_json: bool = False) -> str | None:
    """After the replay: adds ``report["recorded_comparison"]`` (the dict
    form) and returns the table to print (None when ``as_json``)."""
    from .compare import comparison, comparison_table

    report["recorded_comparison"] = comparison(report, recorded)
    if as_json:
        return None
    return comparison_table(report, recorded)
