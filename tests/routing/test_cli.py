"""The command line's own surface: `--version`, and help that fits 80 columns uncut."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    [],
    ["serve"],
    ["policy"],
    ["policy", "check"],
    ["policy", "explain"],
    ["simulate"],
    ["costs"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["calibrate"],
    ["classifier", "train"],
    ["classifier", "eval"],
    ["db", "upgrade"],
]


def stepgate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm-256color"}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip


def test_version_is_the_packages() -> None:
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = stepgate("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"stepgate {expected}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "stepgate")
def test_help_fits_80_columns_uncut(command: list[str]) -> None:
    result = stepgate(*command, "--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, "no help printed"
    long = [line for line in lines if len(line) > 80]
    assert not long, long
    assert "…" not in result.stdout  # a cut option name or default
