"""Reading YAML config files into a ``Spec``, with errors a person can act on.

Every way a user's file can be wrong ends as a ``ConfigError`` naming the
file, the line, the field path and the bad value, e.g.::

    config/x.yaml:14: queues[2].service_level.threshold: expected a number, got "twenty"

How: the YAML is composed once into PyYAML nodes (which remember their
lines) and constructed into plain Python data, which ``msgspec.convert``
turns into a ``Spec``.  msgspec stops at the first type error and words it
for programmers (``Expected `float`, got `str` - at `$.queues[2]...```); we
rewrite that in plain words, fill in the bad value and the dict key msgspec
elides as ``[...]``, and find the line by walking the nodes along the path.
Then ``acd.core.spec.check`` runs and *all* its semantic errors are raised
together as ``ConfigErrors``.

The only IO here is reading the file.
"""

from __future__ import annotations

import codecs
import datetime
import difflib
import json
import os
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .core.spec import Spec, check

__all__ = ["ConfigError", "ConfigErrors", "load_config", "load_config_text"]


class ConfigError(Exception):
    """One problem in a config file.

    ``path`` is the field path (``queues[2].overflow``), ``""`` when the
    problem is the whole file; ``line`` is 1-based, ``None`` when unknown.
    ``errors`` is ``[self]``, so callers can always iterate ``err.errors``.
    """

    def __init__(self, file: str, line: int | None, path: str, message: str):
        super().__init__(file, line, path, message)
        self.file = file
        self.line = line
        self.path = path
        self.message = message

    @property
    def errors(self) -> list[ConfigError]:
        return [self]

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return ": ".join(p for p in (where, self.path, self.message) if p)


class ConfigErrors(ConfigError):
    """Several problems found at once (the semantic checks report them all).

    A ``ConfigError`` itself, so one ``except ConfigError`` catches both; its
    own file/line/path/message are the first error's, ``str()`` gives one line
    per error.
    """

    def __init__(self, errors: list[ConfigError]):
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        first = errors[0]
        super().__init__(first.file, first.line, first.path, first.message)
        self._errors = list(errors)

    @property
    def errors(self) -> list[ConfigError]:
        return list(self._errors)

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self._errors)

    def __reduce__(self):  # Exception pickles by re-calling cls(*args)
        return (ConfigErrors, (self._errors,))


def load_config(path: str | os.PathLike[str]) -> Spec:
    """Read and validate the YAML config at ``path``; raise ``ConfigError``."""
    name = os.fsdecode(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(name, None, "", f"cannot read file: {exc.strerror or exc}") from None
    return load_config_text(data, name)


def load_config_text(text: str | bytes, name: str = "<string>") -> Spec:
    """Validate YAML ``text``; ``name`` is what errors call the file."""
    try:
        root, obj = _parse_yaml(text, name)
        if obj is None:
            raise ConfigError(name, None, "", "the file is empty (expected a mapping with a 'queues:' list)")
        if not isinstance(obj, dict):
            raise ConfigError(name, _line(root, ""), "", f"the top level must be a mapping (queues:, agents:, ...), got {_kind(obj)}")
        try:
            spec = msgspec.convert(obj, Spec)
        except msgspec.ValidationError as exc:
            raise _translate(str(exc), obj, root, name) from None
        errors = check(spec)
    except RecursionError:
        raise ConfigError(name, None, "", "the file is nested too deeply (or has a recursive alias)") from None
    if errors:
        raise ConfigErrors([ConfigError(name, _line(root, e.path), e.path, e.message) for e in errors])
    return spec


# --- YAML ---------------------------------------------------------------------------


def _parse_yaml(text: str | bytes, name: str) -> tuple[Node | None, Any]:
    """Compose the node tree (for line numbers) and build plain data from it."""
    if isinstance(text, bytes):
        # Decode here rather than in PyYAML so a bad byte gets a line number.
        utf16 = text[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        try:
            text = text.decode("utf-16" if utf16 else "utf-8-sig")
        except UnicodeDecodeError as exc:
            line = text.count(b"\n", 0, exc.start) + 1
            raise ConfigError(name, line, "", f"not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # already checks for forbidden characters
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_duplicate_keys(root, "", name, set())
        try:
            return root, loader.construct_document(root)
        except ValueError as exc:  # an impossible unquoted date, e.g. 2026-02-30
            bad = _bad_timestamp(loader, root)
            line = bad.start_mark.line + 1 if bad is not None else None
            value = f' "{bad.value}"' if bad is not None else ""
            raise ConfigError(name, line, "", f"impossible date or time{value}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or str(exc)
        if exc.context and problem.startswith("but "):  # "expected a single document..., but found another"
            problem = f"{exc.context}, {problem}"
        raise ConfigError(name, line, "", f"YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:  # e.g. a control character
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(name, line, "", f"YAML error: {exc.reason} (character #x{exc.character:04x})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(name, None, "", f"YAML error: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _bad_timestamp(loader: Any, node: Node) -> Node | None:
    """The first timestamp scalar PyYAML cannot turn into a date."""
    stack = [node]
    while stack:
        n = stack.pop(0)
        if isinstance(n, yaml.ScalarNode):
            if n.tag == "tag:yaml.org,2002:timestamp":
                try:
                    loader.construct_yaml_timestamp(n)
                except ValueError:
                    return n
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.extend((k, v))
    return None


def _check_duplicate_keys(node: Node, path: str, name: str, seen: set[int]) -> None:
    """PyYAML silently keeps the last of two equal keys; for a config that
    hides a mistake (two ``skills:`` in one group), so it is an error."""
    if id(node) in seen:  # an alias: already checked, and may be recursive
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            sub = path
            if isinstance(key, ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if (key.tag, key.value) in first:
                    msg = f"duplicate key {_show(key.value)} (first on line {first[key.tag, key.value]})"
                    raise ConfigError(name, line, path, msg)
                first[key.tag, key.value] = line
                sub = f"{path}.{key.value}" if path else key.value
            _check_duplicate_keys(value, sub, name, seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicate_keys(item, f"{path}[{i}]", name, seen)


def _line(root: Node | None, path: str) -> int | None:
    """1-based line of the key (or list item) at ``path``, else of the
    nearest parent that exists.

    Keys are matched against the text of ``path`` itself, longest first, so
    dotted names (a skill ``lang.en`` in ``queues[0].skills.lang.en``) work.
    """
    if root is None:
        return None
    node, rest, line = root, path, root.start_mark.line + 1
    while rest:
        if rest.startswith("["):
            m = re.match(r"\[(\d+)\]", rest)
            if not m or not isinstance(node, SequenceNode) or int(m[1]) >= len(node.value):
                break
            node, rest = node.value[int(m[1])], rest[m.end() :]
            line = node.start_mark.line + 1
            continue
        rest = rest.removeprefix(".")
        if not isinstance(node, MappingNode):
            break
        best: tuple[Node, Node] | None = None
        for key, value in node.value:
            k = key.value if isinstance(key, ScalarNode) else None
            if k and rest.startswith(k) and rest[len(k) : len(k) + 1] in ("", ".", "["):
                if best is None or len(k) > len(best[0].value):
                    best = (key, value)
        if best is None:
            break
        line = best[0].start_mark.line + 1
        node, rest = best[1], rest[len(best[0].value) :]
    return line


# --- msgspec errors -------------------------------------------------------------------

_EXPECTED_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
    "date": "a date",
    "datetime": "a date and time",
    "time": "a time",
    "bytes": "binary data",
}


def _translate(text: str, raw: dict, root: Node | None, name: str) -> ConfigError:
    """Turn one msgspec ValidationError message into a ConfigError."""
    msg, _, where = text.partition(" - at `")
    where = where.removesuffix("`")
    key_error = where.startswith("key` in `")
    path, value, tp = _resolve(where.removeprefix("key` in `") or "$", raw)
    line = _line(root, path)
    if key_error:
        # The bad thing is a key of the dict at ``path``: find it, point at its line.
        ktype = get_args(tp)[0] if get_origin(tp) is dict else str
        bad = [k for k in value if not _fits(k, ktype)] if isinstance(value, dict) else []
        value = bad[0] if bad else _MISSING
        line = _line(root, _join(path, value)) if bad else line
        tp = _unwrap(ktype)
    as_key = " as key" if key_error else ""
    got = "" if value is _MISSING else f", got {_show(value)}"

    def error(message: str) -> ConfigError:
        return ConfigError(name, line, path, message)

    if m := re.fullmatch(r"Object missing required field `(.+)`", msg):
        return error(f"missing required field {_show(m[1])}")
    if m := re.fullmatch(r"Object contains unknown field `(.+)`", msg):
        fields = [f.name for f in msgspec.structs.fields(tp)] if _is_struct(tp) else []
        close = difflib.get_close_matches(m[1], fields, n=1)
        hint = f" (did you mean {_show(close[0])}?)" if close else f" (expected one of {_choices(fields)})" if fields else ""
        path = _join(path, m[1])
        return ConfigError(name, _line(root, path), path, f"unknown field{hint}")
    if re.fullmatch(r"Invalid enum value .*", msg):
        choices = get_args(tp) if get_origin(tp) is Literal else ()
        return error(f"expected {'one of ' + _choices(choices) if choices else 'an allowed value'}{as_key}{got}")
    if m := re.fullmatch(r"Expected `(.+?)`, got `(.+?)`", msg):
        return error(f"expected {_words(m[1])}{as_key}{got or ', got ' + _words(m[2])}")
    if m := re.fullmatch(r"Expected `(\w+)` (of length )?([<>]=?) (\S+)", msg):
        kind, length, op, bound = m[1], m[2], m[3], m[4]
        bound = f"{float(bound):g}" if re.fullmatch(r"-?\d+(\.\d*)?", bound) else bound
        if length and kind == "str" and (op, bound) in ((">=", "1"), (">", "0")):
            return error(f"must not be empty{got}")
        if length and kind == "array" and op == ">=":
            return error(f"needs at least {bound} item{'' if bound == '1' else 's'}{got}")
        return error(f"{'length ' if length else ''}must be {op} {bound}{got}")
    # A wording we do not know: keep msgspec's words, with our path, line and value.
    return error(msg[:1].lower() + msg[1:] + got)


_MISSING: Any = object()


def _resolve(where: str, raw: Any) -> tuple[str, Any, Any]:
    """Follow msgspec's ``$.a[0].b[...]`` through the raw data and the Spec's
    types together; ``[...]`` (a dict value, key not named) becomes the first
    key whose value does not fit, which is the one msgspec stopped at.
    Returns (our path, the raw value there, its expected type)."""
    path, value, tp = "", raw, Spec
    for field, index in re.findall(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]", where.removeprefix("$")):
        if index and index != "...":
            path, value, tp = f"{path}[{index}]", _child(value, int(index)), _child_type(tp, int(index))
            continue
        key: Any = field
        if index == "...":
            vtype = get_args(tp)[1] if get_origin(tp) is dict else Any
            bad = [k for k, v in value.items() if not _fits(v, vtype)] if isinstance(value, dict) else []
            key = bad[0] if bad else _MISSING
        path, value, tp = _join(path, key), _child(value, key), _child_type(tp, key)
    return path, value, tp


def _join(path: str, key: Any) -> str:
    """``queues[0].skills`` + ``support``: the same form as ``check()``'s paths."""
    if key is _MISSING:
        return path
    text = key if isinstance(key, str) else json.dumps(key, default=str)
    return f"{path}.{text}" if path else text


def _child(value: Any, seg: Any) -> Any:
    if isinstance(value, dict):
        return value.get(seg, _MISSING)
    if isinstance(value, list) and isinstance(seg, int) and 0 <= seg < len(value):
        return value[seg]
    return _MISSING


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None``: the shape a value must have."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def _child_type(tp: Any, seg: Any) -> Any:
    tp = _unwrap(tp)
    if _is_struct(tp):
        fields = {f.name: f.type for f in msgspec.structs.fields(tp)}
        return _unwrap(fields.get(seg, Any))
    if get_origin(tp) is list:
        return _unwrap(get_args(tp)[0])
    if get_origin(tp) is dict:
        return _unwrap(get_args(tp)[1])
    return Any


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _fits(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp)
    except (msgspec.ValidationError, TypeError):
        return False
    return True


def _words(kinds: str) -> str:
    """msgspec's ``float | null`` -> ``a number``: null is left out when there
    is something else (an optional field is given because it is wanted)."""
    names = [k.strip() for k in kinds.split("|")]
    if "float" in names and "int" in names:
        names.remove("int")
    if len(names) > 1 and "null" in names:
        names.remove("null")
    words = [_EXPECTED_WORDS.get(n, n) for n in names]
    if len(words) > 1:
        words = ["true/false" if w == "true or false" else w for w in words]
        return ", ".join(words[:-1]) + " or " + words[-1]
    return words[0]


def _choices(values: Any) -> str:
    return ", ".join(_show(v) for v in values)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return _show(value)


def _show(value: Any) -> str:
    """The value as the user would recognise it: JSON-ish, strings quoted,
    true/false/null, cut short when long."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # a recursive alias
        text = "a recursive structure"
    return text if len(text) <= 60 else text[:57] + "..."
