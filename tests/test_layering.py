"""The routing core stays sans-IO, and imports point down.

A parse of every module under ``acd/core`` fails on a banned import (event
loops, sockets, clocks, threads, logging, subprocesses, the shells), and on
use of the global random state or of wall-clock reads, so the core stays a
deterministic state machine that the daemon and the replay can share.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "src" / "acd" / "core"
BANNED_MODULES = {"asyncio", "socket", "selectors", "ssl", "threading", "multiprocessing", "subprocess", "time",
                  "logging", "structlog", "aiomqtt", "paho", "uvloop", "http", "urllib", "signal", "os", "io",
                  "yaml", "acd.daemon", "acd.replay", "acd.bus", "acd.cli", "acd.config", "acd.http"}
BANNED_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("datetime", "today"),
                ("random", "random"), ("random", "choice"), ("random", "randrange"), ("random", "seed")}


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative: inside acd.core, or up into acd
                mod = ("acd." + mod) if node.level >= 2 else "acd.core." + mod
            yield mod, node.lineno
            if mod == "random":
                for alias in node.names:
                    if alias.name != "Random":
                        yield f"random.{alias.name} (global random state)", node.lineno


def test_core_modules_import_nothing_that_does_io_or_reads_a_clock():
    problems = []
    files = sorted(CORE.glob("*.py"))
    assert len(files) >= 9
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for mod, line in _imports(tree):
            top = mod.split(".")[0]
            if mod in BANNED_MODULES or top in BANNED_MODULES or any(mod.startswith(b + ".") for b in BANNED_MODULES) \
                    or "global random" in mod:
                problems.append(f"{path.name}:{line}: imports {mod}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in BANNED_CALLS:
                problems.append(f"{path.name}:{node.lineno}: calls {node.func.value.id}.{node.func.attr}()")
    assert problems == []


def test_the_check_has_teeth(tmp_path):
    bad = ast.parse("import asyncio\nfrom random import choice\nfrom ..daemon import Daemon\n")
    found = [m for m, _ in _imports(bad)]
    assert "asyncio" in found and "acd.daemon" in found and any("global random" in m for m in found)
