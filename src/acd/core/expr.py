"""Skill expressions: which agents a queue (or an escalation step) targets.

A target such as ``support >= 3 and (english or spanish) and not trainee`` is
parsed and checked once when the config loads, and compiled to a plain Python
predicate over one agent's skills and attributes.  The core evaluates it only
when it builds a routing pool (once per pool and agent), never per event.

Grammar (keywords are case-insensitive; ``&&``, ``||`` and ``!`` also work)::

    expr    := or
    or      := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | compare
    compare := value (("=="|"!="|">="|"<="|">"|"<") value)?
    value   := NAME | NUMBER | STRING | "true" | "false" | "(" expr ")"

A NAME is a skill (its level, 0 when the agent lacks it) or an attribute (its
value, None when absent).  Alone, a name is true when the level is above 0 or
the attribute is truthy.  Names that no agent group defines are an error: a
typo must not silently empty a queue's target.
"""

from __future__ import annotations

import operator
import re
from typing import Any, Callable, Iterable, Mapping

Predicate = Callable[[Mapping[str, int], Mapping[str, Any]], bool]


class ExprError(ValueError):
    """A target expression that does not parse or names unknown things."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d+)?)
      | (?P<str>"[^"]*"|'[^']*')
      | (?P<op>==|!=|>=|<=|>|<|&&|\|\||!|\(|\))
      | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
    )""",
    re.VERBOSE,
)
_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_KEYWORDS = {"and", "or", "not", "true", "false"}


def _tokenize(text: str) -> list[tuple[str, Any]]:
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos + 1}")
        pos = m.end()
        if m.group("num") is not None:
            num = m.group("num")
            out.append(("lit", float(num) if "." in num else int(num)))
        elif m.group("str") is not None:
            out.append(("lit", m.group("str")[1:-1]))
        elif m.group("op") is not None:
            op = {"&&": "and", "||": "or", "!": "not"}.get(m.group("op"), m.group("op"))
            out.append(("kw", op) if op in ("and", "or", "not") else ("op", op))
        else:
            word = m.group("name")
            low = word.lower()
            if low in ("and", "or", "not"):
                out.append(("kw", low))
            elif low in ("true", "false"):
                out.append(("lit", low == "true"))
            else:
                out.append(("name", word))
    return out


class _Parser:
    """Recursive descent over the token list; builds closures directly."""

    def __init__(self, text: str, skills: set[str], attributes: set[str]):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.skills = skills
        self.attributes = attributes
        self.referenced_skills: list[str] = []

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise ExprError("unexpected end of expression")
        self.i += 1
        return tok

    def parse(self) -> Callable[[Mapping, Mapping], Any]:
        if not self.tokens:
            raise ExprError("empty expression")
        fn = self.parse_or()
        if self.peek() is not None:
            raise ExprError(f"unexpected {self.peek()[1]!r} after a complete expression")
        return fn

    def parse_or(self):
        parts = [self.parse_and()]
        while self.peek() == ("kw", "or"):
            self.take()
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda s, a: any(bool(p(s, a)) for p in parts)

    def parse_and(self):
        parts = [self.parse_unary()]
        while self.peek() == ("kw", "and"):
            self.take()
            parts.append(self.parse_unary())
        if len(parts) == 1:
            return parts[0]
        return lambda s, a: all(bool(p(s, a)) for p in parts)

    def parse_unary(self):
        if self.peek() == ("kw", "not"):
            self.take()
            inner = self.parse_unary()
            return lambda s, a: not inner(s, a)
        return self.parse_compare()

    def parse_compare(self):
        left, left_kind = self.parse_value()
        tok = self.peek()
        if tok is None or tok[0] != "op" or tok[1] not in _COMPARE:
            return left
        self.take()
        right, right_kind = self.parse_value()
        op = _COMPARE[tok[1]]
        if tok[1] not in ("==", "!=") and "str" in (left_kind, right_kind):
            raise ExprError(f"cannot order strings with {tok[1]!r}")
        if tok[1] not in ("==", "!="):
            # An absent attribute is None: ordering it is false, not an error.
            def ordered(s, a):
                x, y = left(s, a), right(s, a)
                if x is None or y is None or isinstance(x, str) or isinstance(y, str):
                    return False
                return op(x, y)

            return ordered
        return lambda s, a: op(left(s, a), right(s, a))

    def parse_value(self):
        kind, val = self.take()
        if kind == "lit":
            return (lambda s, a, v=val: v), ("str" if isinstance(val, str) else "lit")
        if kind == "name":
            if val in self.skills:
                self.referenced_skills.append(val)
                return (lambda s, a, n=val: s.get(n, 0)), "skill"
            if val in self.attributes:
                return (lambda s, a, n=val: a.get(n)), "attr"
            raise ExprError(f"unknown skill or attribute {val!r} (no agent group defines it)")
        if (kind, val) == ("op", "("):
            inner = self.parse_or()
            if self.take() != ("op", ")"):
                raise ExprError("missing ')'")
            return inner, "expr"
        raise ExprError(f"unexpected {val!r}")


class Target:
    """A compiled target: ``target(skills, attributes) -> bool``.

    ``skills`` lists the skills the expression mentions; the most-skilled
    strategy ranks agents by the sum of their levels in them.
    """

    __slots__ = ("text", "predicate", "skills")

    def __init__(self, text: str, predicate: Predicate, skills: Iterable[str]):
        self.text = text
        self.predicate = predicate
        self.skills = tuple(dict.fromkeys(skills))

    def __call__(self, skills: Mapping[str, int], attributes: Mapping[str, Any]) -> bool:
        return bool(self.predicate(skills, attributes))

    def __repr__(self) -> str:
        return f"Target({self.text!r})"


def compile_expression(text: str, skills: Iterable[str], attributes: Iterable[str]) -> Target:
    """Parse ``text`` against the known skill and attribute names."""
    parser = _Parser(text, set(skills), set(attributes))
    fn = parser.parse()
    return Target(text, fn, parser.referenced_skills)


def skills_target(required: Mapping[str, int]) -> Target:
    """The all-of target ``{skill: minimum level}`` (a level of 0 means 'has it'... or not:
    a minimum of 0 is always met, so it only ranks most-skilled)."""
    items = tuple(required.items())

    def pred(s: Mapping[str, int], a: Mapping[str, Any]) -> bool:
        for name, level in items:
            if s.get(name, 0) < level:
                return False
        return True

    text = " and ".join(f"{k} >= {v}" for k, v in items) or "true"
    return Target(text, pred, (k for k, _ in items))


def all_of(targets: Iterable[Target]) -> Target:
    """Conjunction of targets (queue skills and its expression, contact skills)."""
    ts = [t for t in targets if t is not None]
    if len(ts) == 1:
        return ts[0]
    preds = [t.predicate for t in ts]
    return Target(
        " and ".join(f"({t.text})" for t in ts) or "true",
        lambda s, a: all(p(s, a) for p in preds),
        (k for t in ts for k in t.skills),
    )


def any_of(targets: Iterable[Target]) -> Target:
    """Disjunction: an escalation ring is the union of the rings before it."""
    ts = list(targets)
    if len(ts) == 1:
        return ts[0]
    preds = [t.predicate for t in ts]
    return Target(
        " or ".join(f"({t.text})" for t in ts),
        lambda s, a: any(p(s, a) for p in preds),
        (k for t in ts for k in t.skills),
    )
