"""The policy's `limits:` and `cache:` sections: parsed, defaults, and errors with positions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.policy.loader import PolicyLoadError, load_policy
from tests.conftest import TEST_POLICY

BASE = TEST_POLICY.format(
    dllm="http://127.0.0.1:1/v1",
    openai="http://127.0.0.1:2/v1",
    anthropic="http://127.0.0.1:3",
    timeout=2,
)


def _load(tmp_path: Path, extra: str) -> object:
    path = tmp_path / "policy.yaml"
    path.write_text(BASE + extra)
    return load_policy(path)


def test_defaults_when_absent(tmp_path: Path) -> None:
    policy = _load(tmp_path, "")
    assert policy.limits.teams == {}  # type: ignore[attr-defined]
    assert policy.limits.on_store_error.rate == "open"  # type: ignore[attr-defined]
    assert policy.limits.on_store_error.budget == "closed"  # type: ignore[attr-defined]
    assert policy.cache.enabled is False  # type: ignore[attr-defined]


def test_sections_parse(tmp_path: Path) -> None:
    policy = _load(
        tmp_path,
        "limits:\n"
        "  on_store_error: {rate: closed}\n"
        "  teams:\n"
        "    support: {rpm: 600, tpm: 200000, daily_budget_usd: '12.50', on_store_error: open}\n"
        "cache: {enabled: true, kinds: [classify], ttl_s: 120}\n",
    )
    team = policy.limits.teams["support"]  # type: ignore[attr-defined]
    assert team.daily_budget_usd == Decimal("12.50") and team.on_store_error == "open"
    assert policy.limits.on_store_error.rate == "closed"  # type: ignore[attr-defined]
    assert policy.cache.kinds == ["classify"] and policy.cache.ttl_s == 120  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("limits:\n  teams:\n    support: {rpm: 0}\n", "rpm"),
        ("limits:\n  teams:\n    support: {rmp: 5}\n", "rmp"),
        ("limits:\n  on_store_error: {rate: maybe}\n", "rate"),
        ("cache: {enabled: true, kinds: [chitchat]}\n", "kinds"),
        ("cache: {ttl_s: 0}\n", "ttl_s"),
    ],
)
def test_bad_sections_are_reported_with_their_position(
    tmp_path: Path, extra: str, needle: str
) -> None:
    with pytest.raises(PolicyLoadError) as info:
        _load(tmp_path, extra)
    text = "\n".join(str(p) for p in info.value.problems)
    assert needle in text and "policy.yaml:" in text
