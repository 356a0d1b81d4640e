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

from .compare import comparison, comparison_html, comparison_table, figures, recorded_kpis
from .importer import (
    ATTRIBUTION, ImportOptions, ImportResult, config_yaml, default_paths, import_records, summary_text,
)
from .records import ANONYMOUS_BANK, FIELDS, FORMATS, Call, ImportSummary, Mapping, RecordError, read_calls
from .roster import AVAILABILITY, Roster, RosterPolicy, build_roster
from .survival import kaplan_meier, thin
from .cli import (
    add_compare_arguments, add_import_arguments, compare_report, load_recorded, recorded_for_replay, run_import,
)

__all__ = [
    "ANONYMOUS_BANK", "ATTRIBUTION", "AVAILABILITY", "Call", "FIELDS", "FORMATS", "ImportOptions", "ImportResult",
    "ImportSummary", "Mapping", "RecordError", "Roster", "RosterPolicy", "add_compare_arguments",
    "add_import_arguments", "build_roster", "compare_report", "comparison", "comparison_html", "comparison_table",
    "config_yaml", "default_paths", "figures", "import_records", "kaplan_meier", "load_recorded", "read_calls",
    "recorded_for_replay", "recorded_kpis", "run_import", "summary_text", "thin",
]
