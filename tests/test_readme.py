"""The README's two commands are a promise: keep them true."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from acd.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_commands():
    assert len(_readme_commands()) == 2


def test_ci_runs_the_readme_test_command():
    test_cmd = _readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci, "'.ci/run' must run the README's test command verbatim"


def test_main_command_runs_on_the_shipped_defaults(capsys):
    cmd = _readme_commands()[0]
    replay = shlex.split(cmd.split("&&")[-1])
    assert replay[0].endswith("acd") and replay[1] == "replay"
    for path in replay[2:4]:
        assert (ROOT / path).is_file(), path
    assert main([*replay[1:4], "--no-progress"][0:1] + [str(ROOT / p) for p in replay[2:4]] + ["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "TOTAL" in out and "support" in out
