"""The README's set-up commands are what a newcomer copies and what CI runs: keep them true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set-up (fresh machine)", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in FENCE.findall(section)]


def ci_test_command() -> str:
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [ln for ln in lines if ln and not ln.startswith("#") and "pytest" in ln]
    assert len(commands) == 1, f".ci/run should run one test command, found {commands}"
    return commands[0]


def test_readme_opens_with_a_title_and_what_it_is() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0].startswith("# sglfleet")
    intro = " ".join(lines[1:10])
    assert "SGLang" in intro and "endpoint" in intro


def test_readme_has_exactly_two_setup_commands_serve_then_test() -> None:
    cmds = setup_commands()
    assert len(cmds) == 2, cmds
    serve, tests = cmds
    assert re.search(r"\bsglfleet serve\b", serve), serve
    assert "pytest" in tests, tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    assert ci_test_command() == setup_commands()[1]


def test_setup_commands_use_files_that_exist() -> None:
    for cmd in setup_commands():
        for script in re.findall(r"python3 (\S+\.py)", cmd):
            assert (ROOT / script).is_file(), script
