"""Recorded call logs: import them as scenarios, replay them, compare.

``acd scenario import`` reads a CSV/TSV call log (one row per call; a column
``Mapping``, with ``ANONYMOUS_BANK`` ready for the Technion "Anonymous Bank"
files) and writes

* a scenario (JSONL): one contact per call that reached the ACD, with the
  customer's patience (observed for abandoned calls; for answered ones a
  Kaplan-Meier curve per call type, drawn from given the recorded wait), and
  the agents' login/logout/not-ready lines inferred from their services;
* a config (YAML): a queue per call type, a group per agent with its skills;
* a sidecar (``X.recorded.json``): the import summary (where every row went)
  and the recorded KPIs, which ``acd replay --compare-recorded`` puts beside
  the replayed ones.

Modules: ``records`` (reading, quirks), ``survival`` (Kaplan-Meier),
``roster`` (shifts, availability, skills), ``importer`` (the files),
``compare`` (recorded KPIs, the comparison), ``cli`` (argparse glue).
"""

from typing import Any

# Re-exports, imported on first use: `acd replay` needs only a flag from
# `cli`, and the importer is heavy to load.
_EXPORTS = {
    "comparison": "compare", "comparison_html": "compare", "comparison_table": "compare", "figures": "compare",
    "recorded_kpis": "compare",
    "ATTRIBUTION": "importer", "ImportOptions": "importer", "ImportResult": "importer", "config_yaml": "importer",
    "default_paths": "importer", "import_records": "importer", "summary_text": "importer",
    "ANONYMOUS_BANK": "records", "FIELDS": "records", "FORMATS": "records", "Call": "records",
    "ImportSummary": "records", "Mapping": "records", "RecordError": "records", "read_calls": "records",
    "AVAILABILITY": "roster", "Roster": "roster", "RosterPolicy": "roster", "build_roster": "roster",
    "kaplan_meier": "survival", "thin": "survival",
    "add_compare_arguments": "cli", "add_import_arguments": "cli", "compare_report": "cli",
    "load_recorded": "cli", "recorded_for_replay": "cli", "run_import": "cli",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'acd.recorded' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
