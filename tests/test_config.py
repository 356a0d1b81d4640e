"""Tests for acd.config: YAML files into a Spec, and errors that name file,
line, field path and the bad value."""

from __future__ import annotations

import pickle
import textwrap

import pytest

from acd.config import ConfigError, ConfigErrors, load_config, load_config_text
from acd.core.spec import Capacity, Spec

MINIMAL = """\
queues:
  - name: support
    channel: voice
    skills: {support: 1}          # skill -> minimum level
    service_level: {threshold: 20, target: 0.8}
agents:
  - group: tier1                  # a group expands to agents tier1-1 .. tier1-100
    count: 100
    skills: {support: 5}
"""

# Agents that several semantic tests share (lines 1-6 of their file).
AGENTS = """\
agents:
  - group: tier1
    count: 2
    skills: {support: 5, billing: 3, lang.en: 4}
    attributes: {site: paris}
interval: 900
"""


def write(tmp_path, text: str, name: str = "acd.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path, text: str) -> tuple[ConfigError, str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value, str(path)


# --- valid files --------------------------------------------------------------------


def test_minimal_config_loads_with_defaults(tmp_path):
    spec = load_config(write(tmp_path, MINIMAL))
    assert isinstance(spec, Spec)
    (q,) = spec.queues
    assert q.name == "support"
    assert q.channel == "voice"
    assert q.strategy == "longest-idle"
    assert q.skills == {"support": 1}
    assert q.service_level.threshold == 20 and q.service_level.target == 0.8
    (g,) = spec.agents
    assert g.capacity == Capacity(voice=1, chat=3, email=1)
    assert g.skills == {"support": 5}
    assert g.initial == "ready"
    assert spec.interval == 900.0


def test_defaults_when_fields_omitted():
    spec = load_config_text("queues:\n  - name: q\n")
    q = spec.queues[0]
    assert (q.channel, q.strategy, q.ring_timeout, q.escalation) == ("voice", "longest-idle", 20.0, [])
    assert spec.agents == []


def test_agent_group_expansion_ids(tmp_path):
    spec = load_config(write(tmp_path, MINIMAL))
    ids = spec.agents[0].agent_ids()
    assert len(ids) == 100
    assert ids[0] == "tier1-1" and ids[-1] == "tier1-100"


def test_explicit_ids(tmp_path):
    text = MINIMAL.replace("count: 100", "ids: [ann, bob]")
    spec = load_config(write(tmp_path, text))
    assert spec.agents[0].agent_ids() == ["ann", "bob"]


def test_path_object_str_and_bytes_all_work(tmp_path):
    path = write(tmp_path, MINIMAL)
    assert load_config(str(path)) == load_config(path) == load_config_text(MINIMAL) == load_config_text(MINIMAL.encode())


def test_utf8_bom_is_accepted():
    assert load_config_text(b"\xef\xbb\xbf" + MINIMAL.encode()).queues[0].name == "support"


def test_yaml_anchor_and_merge_key():
    text = """\
    queues:
      - &base
        name: a
        skills: {support: 1}
        wrap_up: 5
      - <<: *base
        name: b
    agents:
      - group: g
        count: 1
        skills: {support: 2}
    """
    spec = load_config_text(textwrap.dedent(text))
    assert [q.name for q in spec.queues] == ["a", "b"]
    assert spec.queues[1].wrap_up == 5


def test_escalation_and_target_expression():
    text = """\
    queues:
      - name: sales
        target: "billing >= 2 and site == 'paris'"
        max_wait: 300
        overflow: support
        escalation:
          - after: 30
            skills: {support: 1}
          - after: 60
            priority: 5
      - name: support
    """
    spec = load_config_text(textwrap.dedent(text) + AGENTS)
    assert [s.after for s in spec.queues[0].escalation] == [30, 60]


# --- type errors (msgspec), one at a time -------------------------------------------------


def test_wrong_type_names_file_line_path_and_value(tmp_path):
    text = """\
    queues:
      - name: a
      - name: b
      - name: c
        service_level:
          threshold: twenty
    """
    err, file = load_error(tmp_path, text)
    assert err.file == file
    assert err.line == 6
    assert err.path == "queues[2].service_level.threshold"
    assert "expected a number" in err.message and '"twenty"' in err.message
    assert str(err) == f'{file}:6: queues[2].service_level.threshold: expected a number, got "twenty"'
    assert err.errors == [err]


def test_wrong_type_in_flow_mapping_points_at_its_line(tmp_path):
    err, _ = load_error(tmp_path, "queues:\n  - name: a\n    service_level: {threshold: twenty}\n")
    assert (err.line, err.path) == (3, "queues[0].service_level.threshold")


def test_integer_expected():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues: [{name: a}]\nagents:\n  - group: g\n    count: 1.5\n", "f.yaml")
    err = info.value
    assert (err.file, err.line, err.path) == ("f.yaml", 4, "agents[0].count")
    assert err.message == "expected an integer, got 1.5"


@pytest.mark.parametrize(
    ("value", "words", "shown"),
    [("yes", "expected a number", "true"), ("[1, 2]", "expected a number", "[1, 2]"), ("null", "expected a number", "null")],
)
def test_bool_list_and_null_values_shown_as_written(value, words, shown):
    with pytest.raises(ConfigError) as info:
        load_config_text(f"queues:\n  - name: a\n    wrap_up: {value}\n")
    assert info.value.path == "queues[0].wrap_up"
    assert info.value.message == f"{words}, got {shown}"


def test_mapping_and_list_expected():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues: {name: a}\n")
    assert info.value.path == "queues" and info.value.message.startswith("expected a list, got {")
    with pytest.raises(ConfigError) as info:
        load_config_text("queues:\n  - name: a\n    skills: [support]\n")
    assert (info.value.line, info.value.path) == (3, "queues[0].skills")
    assert info.value.message == 'expected a mapping, got ["support"]'


def test_string_expected():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues:\n  - name: 12\n")
    assert (info.value.line, info.value.path, info.value.message) == (2, "queues[0].name", "expected a string, got 12")


def test_enum_value(tmp_path):
    err, file = load_error(tmp_path, "queues:\n  - name: a\n    channel: fax\n")
    assert (err.file, err.line, err.path) == (file, 3, "queues[0].channel")
    assert err.message == 'expected one of "voice", "chat", "email", got "fax"'


def test_enum_inside_a_list_inside_a_dict():
    text = "queues: [{name: a}]\nagents:\n  - group: g\n    count: 1\n    blocking:\n      voice: [chat, fax]\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert (info.value.line, info.value.path) == (6, "agents[0].blocking.voice[1]")
    assert '"fax"' in info.value.message and '"chat"' in info.value.message


def test_enum_dict_key():
    text = "queues: [{name: a}]\nagents:\n  - group: g\n    count: 1\n    blocking:\n      voice: [chat]\n      fax: [chat]\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert (info.value.line, info.value.path) == (7, "agents[0].blocking")
    assert info.value.message == 'expected one of "voice", "chat", "email" as key, got "fax"'


def test_constraint_names_the_dict_key_msgspec_leaves_out(tmp_path):
    text = """\
    queues:
      - name: a
        skills:
          support: 1
          billing: 11
    """
    err, _ = load_error(tmp_path, text)
    assert (err.line, err.path) == (5, "queues[0].skills.billing")
    assert err.message == "must be <= 10, got 11"


def test_constraint_ge(tmp_path):
    err, file = load_error(tmp_path, "queues: [{name: a}]\nagents:\n  - group: g\n    count: 0\n")
    assert (err.file, err.line, err.path) == (file, 4, "agents[0].count")
    assert err.message == "must be >= 1, got 0"


def test_constraint_gt_float_bound_printed_plainly():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues:\n  - name: a\n    max_wait: 0\n")
    assert info.value.message == "must be > 0, got 0"


def test_empty_list_and_empty_string():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues: []\n")
    assert (info.value.line, info.value.path, info.value.message) == (1, "queues", "needs at least 1 item, got []")
    with pytest.raises(ConfigError) as info:
        load_config_text("queues:\n  - name: ''\n")
    assert (info.value.path, info.value.message) == ("queues[0].name", 'must not be empty, got ""')


def test_missing_required_field(tmp_path):
    err, file = load_error(tmp_path, "queues:\n  - name: a\n  - channel: chat\n")
    assert (err.file, err.line, err.path) == (file, 3, "queues[1]")
    assert err.message == 'missing required field "name"'
    assert str(err) == f'{file}:3: queues[1]: missing required field "name"'


def test_missing_top_level_queues():
    with pytest.raises(ConfigError) as info:
        load_config_text("agents: []\n", "f.yaml")
    assert (info.value.line, info.value.path) == (1, "")
    assert str(info.value) == 'f.yaml:1: missing required field "queues"'


def test_unknown_field_suggests_the_close_one(tmp_path):
    err, file = load_error(tmp_path, "queues:\n  - name: a\n    skils: {support: 1}\n")
    assert (err.file, err.line, err.path) == (file, 3, "queues[0].skils")
    assert err.message == 'unknown field (did you mean "skills"?)'


def test_unknown_field_without_close_match_lists_fields():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues:\n  - name: a\nfoo: 1\n")
    assert (info.value.line, info.value.path) == (3, "foo")
    assert info.value.message == 'unknown field (expected one of "queues", "agents", "interval", "sites", "shifts")'


def test_non_string_key():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues:\n  - name: a\n    skills:\n      support: 1\n      7: 2\n")
    assert (info.value.line, info.value.path) == (5, "queues[0].skills")
    assert info.value.message == "expected a string as key, got 7"


def test_duplicate_yaml_key(tmp_path):
    text = "queues: [{name: a}]\nagents:\n  - group: g\n    count: 1\n    skills: {a: 1}\n    skills: {b: 1}\n"
    err, _ = load_error(tmp_path, text)
    assert (err.line, err.path) == (6, "agents[0]")
    assert err.message == 'duplicate key "skills" (first on line 5)'


# --- whole-file problems --------------------------------------------------------------


def test_yaml_syntax_error_has_line(tmp_path):
    text = "queues:\n  - name: a\n    channel: voice\n   skills: {}\n"
    err, file = load_error(tmp_path, text)
    assert (err.file, err.line, err.path) == (file, 4, "")
    assert err.message.startswith("YAML syntax error: ")
    assert str(err).startswith(f"{file}:4: YAML syntax error: ")


def test_unclosed_flow_sequence():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues: [\n  {name: a},\n")
    assert info.value.line == 3 and "YAML syntax error" in info.value.message


def test_two_documents():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues: [{name: a}]\n---\nqueues: [{name: b}]\n")
    assert info.value.line == 2 and "single document" in info.value.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file(tmp_path, text):
    err, file = load_error(tmp_path, text)
    assert err.file == file and err.path == ""
    assert "empty" in err.message


@pytest.mark.parametrize(("text", "got"), [("- a\n- b\n", "a list"), ("hello\n", '"hello"'), ("42\n", "42")])
def test_top_level_not_a_mapping(text, got):
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert "top level must be a mapping" in info.value.message and info.value.message.endswith(f"got {got}")


def test_file_not_found(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.line, info.value.path) == (str(path), None, "")
    assert "No such file" in info.value.message
    assert str(info.value) == f"{path}: cannot read file: No such file or directory"


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.file == str(tmp_path) and "cannot read file" in info.value.message


def test_invalid_utf8_has_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"queues:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 2 and "UTF-8" in info.value.message


def test_control_character_has_line():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues:\n  - name: a\x00\n")
    assert info.value.line == 2 and info.value.message.startswith("YAML error:")


def test_unsafe_tag_is_refused():
    with pytest.raises(ConfigError) as info:
        load_config_text("queues:\n  - name: !!python/object/apply:os.system [echo hi]\n")
    assert info.value.line == 2


@pytest.mark.parametrize("text", ["[" * 5000, "queues: &x [*x]\n", "a: &x {b: *x}\n"])
def test_pathological_nesting_is_a_config_error(text):
    with pytest.raises(ConfigError):
        load_config_text(text)


# --- semantic errors (check) ------------------------------------------------------------


def semantic_errors(tmp_path, queues: str) -> tuple[list[ConfigError], str]:
    path = write(tmp_path, textwrap.dedent(queues) + AGENTS)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    return info.value.errors, str(path)


def test_unknown_queue_in_overflow(tmp_path):
    errs, file = semantic_errors(
        tmp_path,
        """\
        queues:
          - name: sales
            max_wait: 60
            overflow: suport
        """,
    )
    (err,) = errs
    assert (err.file, err.line, err.path) == (file, 4, "queues[0].overflow")
    assert "unknown queue" in err.message and "suport" in err.message


def test_duplicate_queue_names(tmp_path):
    errs, file = semantic_errors(tmp_path, "queues:\n  - name: a\n  - name: b\n  - name: a\n")
    (err,) = errs
    assert (err.file, err.line, err.path) == (file, 4, "queues[2].name")
    assert "duplicate queue name" in err.message and "a" in err.message


def test_bad_expression(tmp_path):
    errs, _ = semantic_errors(tmp_path, "queues:\n  - name: a\n    target: support >= and x\n")
    (err,) = errs
    assert (err.line, err.path) == (3, "queues[0].target")
    assert "support >= and x" in err.message and "'and'" in err.message


def test_unknown_skill_in_expression(tmp_path):
    errs, _ = semantic_errors(tmp_path, "queues:\n  - name: a\n    target: suport >= 2 or billing\n")
    (err,) = errs
    assert (err.line, err.path) == (3, "queues[0].target")
    assert "unknown skill or attribute" in err.message and "suport" in err.message


def test_unknown_skill_in_queue_skills_dotted_name(tmp_path):
    text = """\
    queues:
      - name: a
        skills:
          lang.en: 1
          lang.fr: 1
    """
    errs, _ = semantic_errors(tmp_path, text)
    (err,) = errs
    assert (err.line, err.path) == (5, "queues[0].skills.lang.fr")


def test_escalation_steps_out_of_order(tmp_path):
    text = """\
    queues:
      - name: a
        escalation:
          - after: 60
            priority: 1
          - after: 30
            target: billing > 1
    """
    errs, _ = semantic_errors(tmp_path, text)
    (err,) = errs
    assert (err.line, err.path) == (6, "queues[0].escalation[1].after")
    assert "60" in err.message and "30" in err.message


def test_escalation_target_path(tmp_path):
    text = """\
    queues:
      - name: a
        escalation:
          - after: 30
            priority: 1
          - after: 60
            target: nobody > 1
    """
    errs, _ = semantic_errors(tmp_path, text)
    (err,) = errs
    assert (err.line, err.path) == (7, "queues[0].escalation[1].target")


def test_count_and_ids_both_given(tmp_path):
    path = write(tmp_path, "queues: [{name: a}]\nagents:\n  - group: g\n    count: 2\n    ids: [x, y]\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    (err,) = info.value.errors
    assert (err.line, err.path) == (3, "agents[0]")
    assert "count" in err.message and "ids" in err.message


def test_several_semantic_errors_reported_together(tmp_path):
    text = """\
    queues:
      - name: a
        overflow: nowhere
        max_wait: 10
      - name: a
        skills: {cooking: 1}
        target: support >=
    """
    errs, file = semantic_errors(tmp_path, text)
    got = [(e.line, e.path) for e in errs]
    assert got == [(3, "queues[0].overflow"), (5, "queues[1].name"), (6, "queues[1].skills.cooking"), (7, "queues[1].target")]
    assert all(e.file == file for e in errs)
    # str() of the group is one line per error, and the group is itself the first error.
    with pytest.raises(ConfigError) as info:
        load_config(file)
    lines = str(info.value).splitlines()
    assert len(lines) == 4 and lines[0] == f"{file}:3: queues[0].overflow: unknown queue \"nowhere\""
    assert (info.value.line, info.value.path) == (3, "queues[0].overflow")


def test_errors_pickle():
    single = ConfigError("f.yaml", 3, "queues[0]", "boom")
    group = ConfigErrors([single, ConfigError("f.yaml", 4, "queues[1]", "bang")])
    assert str(pickle.loads(pickle.dumps(single))) == str(single)
    assert str(pickle.loads(pickle.dumps(group))) == str(group)


def test_impossible_unquoted_date_is_an_error_with_its_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("queues: [{name: q}]\nsites:\n  - name: x\n    timezone: UTC\n    holidays: [2026-02-30]\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert info.value.line == 5 and "2026-02-30" in str(info.value)
