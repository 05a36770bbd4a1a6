"""A small schema whose `$defs` fan out must not expand on the event loop.

Found by the fuzz: a 3.4 KB `response_format` whose definitions reference each other 8 ways
over 6 levels cost litellm 1.35 s of CPU inlining it for Anthropic (on the event loop; a
concurrent `/healthz` waited), then failed as a 502. The edge counts the inlined size first.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.core.params import MAX_SCHEMA_EXPANSION, schema_expansion
from tests.support.fakes.upstream import FakeUpstream


def fan_out(width: int, depth: int) -> dict[str, Any]:
    defs: dict[str, Any] = {"L0": {"type": "string"}}
    for level in range(1, depth + 1):
        defs[f"L{level}"] = {
            "type": "object",
            "properties": {f"p{i}": {"$ref": f"#/$defs/L{level - 1}"} for i in range(width)},
        }
    return {"$defs": defs, "$ref": f"#/$defs/L{depth}"}


def tree() -> dict[str, Any]:
    """A recursive schema (a category tree): legitimate, and it must stay accepted."""
    return {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
            }
        },
        "$ref": "#/$defs/node",
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "claude-haiku",
        "messages": [{"role": "user", "content": "Give the category tree as JSON."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    }


def test_the_expansion_count_follows_the_references() -> None:
    small = fan_out(3, 3)
    assert schema_expansion(small) > 3**3  # every leaf reached through every path
    assert schema_expansion(fan_out(8, 6)) > MAX_SCHEMA_EXPANSION
    assert len(json.dumps(fan_out(8, 6))) < 4_000
    assert schema_expansion(tree()) < 20


def test_a_fan_out_schema_is_a_400_before_any_upstream(
    client: Any, fake_anthropic: FakeUpstream
) -> None:
    r = client.post("/v1/chat/completions", json=_body(fan_out(8, 6)))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "schema_too_large"
    assert error["param"] == "response_format.json_schema.schema"
    assert fake_anthropic.requests == []


def test_a_recursive_schema_still_reaches_the_provider(
    client: Any, fake_anthropic: FakeUpstream
) -> None:
    fake_anthropic.set_reply(content='{"name": "root", "children": []}')
    r = client.post("/v1/chat/completions", json=_body(tree()))
    assert r.status_code == 200, r.text
    assert len(fake_anthropic.requests) == 1
