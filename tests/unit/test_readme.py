"""The README documents every setting, and its Quick start holds exactly the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from agentfield_arq.core.settings import ENV_PREFIX, Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_has_a_row_in_the_configuration_table() -> None:
    documented = set(re.findall(r"^\| `(AGENTFIELD_ARQ_[A-Z0-9_]+)` \|", README, re.MULTILINE))
    settings = {f"{ENV_PREFIX}{f.name.upper()}" for f in msgspec.structs.fields(Settings)}
    assert settings - documented == set(), "settings missing from the README"
    assert documented - settings == set(), "README rows for settings that do not exist"


def test_quick_start_is_one_block_of_two_commands_run_then_test() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["python3 dev.py run", "python3 dev.py test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text()
    assert "python3 dev.py test" in ci
