"""A key pasted into the policy is refused without being echoed (logs, `policy check`, /readyz)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy.loader import PolicyLoadError, load_policy

CANARY = "sk-proj-Zq8canaryKEYvalue0123456789abcdefXYZ"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("find", "replace"),
    [
        # the common mistake: `${OPENAI_API_KEY}` expands to the key itself
        ("api_key_env: OPENAI_API_KEY", f"api_key_env: {CANARY}"),
        # a key pasted into a typed field: pydantic's message would quote the input
        ("type: litellm", f"type: {CANARY}"),
    ],
    ids=["api_key_env", "typed-field"],
)
def test_policy_errors_never_quote_a_key(tmp_path: Path, find: str, replace: str) -> None:
    text = (ROOT / "policies" / "support.yaml").read_text()
    assert find in text
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(find, replace, 1))
    with pytest.raises(PolicyLoadError) as raised:
        load_policy(path)
    shown = "\n".join(str(p) for p in raised.value.problems)
    assert shown  # the problem is reported...
    assert CANARY not in shown  # ...without the key
    assert CANARY[8:30] not in shown


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STEPGATE_ADMIN_KEY", "short-canary-k3y"[:15]),  # refused: under 16 characters
        ("STEPGATE_BODY_TIMEOUT_S", "canary-not-a-number"),
    ],
)
def test_rejected_settings_are_named_not_echoed(name: str, value: str) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, name: value}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", "1"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert name in result.stderr
    assert value not in result.stderr and value not in result.stdout
