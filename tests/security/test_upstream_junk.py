"""An upstream's junk is that upstream's failure: never a 500, never relayed as an answer.

Found by probing the dLLM wire with malformed 200 replies: `usage.prompt_tokens: 1e300` passed
parsing and crashed the JSON renderer (a 500, and a ledger row the database could not store);
a number as `content` or a string as `tool_calls` went to the client as if it were an answer.
Each is now a malformed reply: retried, then a 502 with a ledger row.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.fakes.upstream import FakeUpstream, status
from tests.support.ledger_view import request_rows

_OK = {"message": {"role": "assistant", "content": "billing"}, "finish_reason": "stop"}
JUNK = {
    "huge_usage": {"choices": [_OK], "usage": {"prompt_tokens": 1e300, "completion_tokens": 1}},
    "negative_usage": {"choices": [_OK], "usage": {"prompt_tokens": -5, "completion_tokens": 1}},
    "usage_overflowing_cost": {"choices": [_OK], "usage": {"completion_tokens": 2**62}},
    "numeric_content": {"choices": [{"message": {"content": 5}, "finish_reason": "stop"}]},
    "string_tool_calls": {
        "choices": [{"message": {"content": None, "tool_calls": "zz"}, "finish_reason": "stop"}]
    },
    "tool_call_not_an_object": {
        "choices": [{"message": {"content": None, "tool_calls": [1]}, "finish_reason": "stop"}]
    },
    "created_not_a_time": {"choices": [_OK], "created": "yesterday"},
    "finish_reason_object": {"choices": [{"message": {"content": "x"}, "finish_reason": {}}]},
}


@pytest.mark.parametrize("name", sorted(JUNK))
def test_a_malformed_reply_is_a_502_with_a_ledger_row(
    client: Any, fake_dllm: FakeUpstream, name: str
) -> None:
    fake_dllm.script([status(200, body=JUNK[name])] * 4)
    r = client.post(
        "/v1/chat/completions",
        json={"model": "dllm-direct", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert "malformed" in error["message"]
    row, attempts = request_rows(client, r.headers["x-request-id"])
    assert row["status"] == 502
    assert attempts and all(a["outcome"] != "ok" for a in attempts)
