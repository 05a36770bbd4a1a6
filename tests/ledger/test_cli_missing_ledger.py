"""Commands that only read the ledger say where they looked when it is not there, and never
leave an empty database behind (a `stepgate costs` run from the wrong folder used to create
`stepgate.db` there and fail with `no such table: rollups`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [["costs"], ["keys", "list"], ["keys", "revoke", "abc123"]])
def test_reading_a_missing_sqlite_ledger_names_it_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPGATE_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *command],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"no ledger at {tmp_path / 'stepgate.db'}" in result.stderr
    assert "--database-url" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created
