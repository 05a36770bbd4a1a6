"""judge(): hard validators, token statistics, agreement, the no-logprobs fallback; decide()."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from gateway.confidence import Verdict, decide, judge
from gateway.confidence.verdict import HARD_FAIL_CAP, PRIOR_UNCHECKED, PRIOR_VALIDATED, agreement
from gateway.core.labels import prompt_labels
from gateway.core.types import ChatRequest, Completion, TokenLogprob, Usage
from gateway.policy.models import ALL_CHECKS, Escalation

CHECKS = list(ALL_CHECKS)
LABEL_PROMPT = "Classify the ticket. Answer with one of: billing, shipping, refund."
TICKET = "Hi, order A-12345 (ana.silva@example.com) cost $42.50; call me on 555-0100."
ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "amount": {"type": "number"},
        "priority": {"enum": ["low", "normal", "high"]},
    },
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}


def request(
    user: str = "I was charged twice",
    *,
    system: str | None = None,
    schema: dict[str, Any] | None = None,
    json_object: bool = False,
    max_tokens: int | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> ChatRequest:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    body: dict[str, Any] = {"model": "auto", "messages": messages}
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": schema},
        }
    elif json_object:
        body["response_format"] = {"type": "json_object"}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if tools is not None:
        body["tools"] = tools
    return ChatRequest.model_validate(body)


def completion(
    content: str | None,
    probs: list[tuple[str, float]] | None = None,
    *,
    sure: bool = True,
    finish: str = "stop",
    used: int | None = None,
    tool_calls: tuple[dict[str, Any], ...] = (),
) -> Completion:
    """`probs` gives explicit tokens; otherwise, with `sure`, the content is one 0.99 token."""
    if probs is None and sure and content:
        probs = [(content, 0.99)]
    logprobs = None if probs is None else tuple(TokenLogprob(t, math.log(p)) for t, p in probs)
    return Completion(
        id="c1",
        model="dllm",
        content=content,
        finish_reason=finish,
        usage=Usage(prompt_tokens=30, completion_tokens=used if used is not None else 3),
        tool_calls=tool_calls,
        logprobs=logprobs,
    )


def extract_json(order: str, amount: str = "42.5") -> tuple[str, list[tuple[str, float]]]:
    pieces = [('{"', 0.99), ("order_id", 0.99), ('":"', 0.99), (order, 0.99), ('","', 0.99)]
    pieces += [("amount", 0.99), ('":', 0.99), (amount, 0.99), ("}", 0.99)]
    return "".join(t for t, _ in pieces), pieces


# --- JSON and schema ---------------------------------------------------------------------------


def test_valid_json_object_passes_and_invalid_json_fails() -> None:
    req = request("Give me JSON", json_object=True)
    good = judge(req, completion('{"ok": true}'), kind="format", checks=CHECKS)
    assert "invalid_json" not in good.reasons and good.score > 0.9
    bad = judge(req, completion('{"ok": tru'), kind="format", checks=CHECKS)
    assert "invalid_json" in bad.reasons
    assert bad.score <= HARD_FAIL_CAP
    assert bad.hard_failure


def test_schema_match_passes_and_mismatch_fails() -> None:
    req = request(TICKET, schema=ORDER_SCHEMA)
    good = judge(
        req, completion('{"order_id":"A-12345","amount":42.5}'), kind="format", checks=CHECKS
    )
    assert good.reasons == () and "json_schema" in good.checks_run
    wrong_type = judge(
        req, completion('{"order_id":"A-12345","amount":"lots"}'), kind="format", checks=CHECKS
    )
    assert wrong_type.reasons == ("schema_mismatch",)
    assert "$.amount" in wrong_type.details
    missing = judge(req, completion('{"order_id":"A-12345"}'), kind="format", checks=CHECKS)
    assert "schema_mismatch" in missing.reasons and missing.score <= HARD_FAIL_CAP


def test_invalid_request_schema_does_not_fail_the_answer() -> None:
    req = request(TICKET, schema={"type": "no-such-type"})
    verdict = judge(req, completion('{"a": 1}'), kind="format", checks=CHECKS)
    assert not verdict.hard_failure
    assert "schema is invalid" in verdict.details


def test_schema_checks_off_skips_json_validation() -> None:
    req = request(TICKET, schema=ORDER_SCHEMA)
    verdict = judge(req, completion("not json"), kind="format", checks=["complete"])
    assert verdict.reasons == ()


# --- labels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (LABEL_PROMPT, ("billing", "shipping", "refund")),
        ("Categories: billing | shipping | refund", ("billing", "shipping", "refund")),
        ("Reply with one of [yes, no]", ("yes", "no")),
        ("Answer with one of: `urgent`, `normal` or `low`.", ("urgent", "normal", "low")),
        (
            "Classify the ticket into one of these categories:\n\n- billing: charges\n"
            "- shipping - parcels\n- wrong_item (we sent the wrong thing)\n\nTicket follows.",
            ("billing", "shipping", "wrong_item"),
        ),
        (
            "Pick one of the following:\n1. Refund\n2. Replace\n3) Repair",
            ("Refund", "Replace", "Repair"),
        ),
        ("One of our agents will call you back, thanks for your patience.", None),
        ("Options: please describe your problem in detail so we can help you fast", None),
    ],
)
def test_prompt_labels(prompt: str, expected: tuple[str, ...] | None) -> None:
    assert prompt_labels(prompt) == expected


def test_label_in_set_passes_and_outside_fails() -> None:
    req = request(system=LABEL_PROMPT)
    good = judge(req, completion("Billing."), kind="classify", checks=CHECKS)
    assert good.reasons == () and "labels" in good.checks_run
    bad = judge(req, completion("payment"), kind="classify", checks=CHECKS)
    assert bad.reasons == ("label_not_allowed",)
    assert bad.score <= HARD_FAIL_CAP
    assert "payment" in bad.details


def test_label_inside_a_json_answer() -> None:
    req = request(system=LABEL_PROMPT + ' Reply as {"intent": ...}', json_object=True)
    good = judge(req, completion('{"intent": "refund"}'), kind="classify", checks=CHECKS)
    assert good.reasons == ()
    bad = judge(req, completion('{"intent": "complaint"}'), kind="classify", checks=CHECKS)
    assert bad.reasons == ("label_not_allowed",)


def test_prompt_labels_only_apply_to_classify_steps() -> None:
    req = request(system=LABEL_PROMPT)
    verdict = judge(req, completion("Sorry to hear that!"), kind="draft", checks=CHECKS)
    assert "label_not_allowed" not in verdict.reasons and "labels" not in verdict.checks_run


def test_schema_enum_is_a_label_check() -> None:
    req = request(TICKET, schema=ORDER_SCHEMA)
    body = '{"order_id":"A-12345","amount":42.5,"priority":"%s"}'
    assert judge(req, completion(body % "high"), kind="format", checks=CHECKS).reasons == ()
    bad = judge(req, completion(body % "asap"), kind="format", checks=CHECKS)
    assert bad.reasons == ("label_not_allowed",)
    without_labels = [c for c in CHECKS if c != "labels"]
    as_schema = judge(req, completion(body % "asap"), kind="format", checks=without_labels)
    assert as_schema.reasons == ("schema_mismatch",)


# --- grounding ---------------------------------------------------------------------------------


def test_extracted_values_in_source_pass_and_invented_ones_fail() -> None:
    req = request(TICKET, schema=ORDER_SCHEMA)
    text, probs = extract_json("A-12345")
    good = judge(req, completion(text, probs), kind="extract", checks=CHECKS)
    assert good.reasons == () and "grounded" in good.checks_run
    text, probs = extract_json("A-12354")
    bad = judge(req, completion(text, probs), kind="extract", checks=CHECKS)
    assert bad.reasons == ("value_not_in_source",)
    assert "A-12354" in bad.details
    assert bad.score <= HARD_FAIL_CAP


def test_grounding_folds_case_whitespace_and_punctuation() -> None:
    req = request("Customer:  ANA   Silva, phone 555 0100")
    answer = '{"name": "ana silva", "phone": "555-0100"}'
    verdict = judge(req, completion(answer), kind="extract", checks=CHECKS)
    assert verdict.reasons == ()


def test_grounding_skips_enum_values_and_abstentions() -> None:
    req = request(TICKET, schema=ORDER_SCHEMA)
    answer = '{"order_id":"A-12345","amount":42.5,"priority":"high"}'
    assert judge(req, completion(answer), kind="extract", checks=CHECKS).reasons == ()
    plain = judge(request("no order number here"), completion("N/A"), kind="extract", checks=CHECKS)
    assert "value_not_in_source" not in plain.reasons


def test_short_plain_extraction_is_grounded_too() -> None:
    req = request(TICKET)
    assert judge(req, completion("a-12345"), kind="extract", checks=CHECKS).reasons == ()
    bad = judge(req, completion("B-99999"), kind="extract", checks=CHECKS)
    assert bad.reasons == ("value_not_in_source",)


def test_grounding_only_for_extract_steps() -> None:
    verdict = judge(request(TICKET), completion("B-99999"), kind="lookup", checks=CHECKS)
    assert verdict.reasons == () and "grounded" not in verdict.checks_run


# --- completeness ------------------------------------------------------------------------------


def test_truncated_by_finish_reason_or_token_limit() -> None:
    req = request("Summarize", max_tokens=50)
    ok = judge(req, completion("A fine summary", used=20), kind="summarize", checks=CHECKS)
    assert ok.reasons == ()
    cut = judge(req, completion("A fine sum", finish="length"), kind="summarize", checks=CHECKS)
    assert cut.reasons == ("truncated",) and cut.score <= HARD_FAIL_CAP
    at_max = judge(req, completion("A fine sum", used=50), kind="summarize", checks=CHECKS)
    assert at_max.reasons == ("truncated",)


def test_empty_answer_fails_but_tool_calls_count_as_content() -> None:
    req = request("Look up my order")
    empty = judge(req, completion("  ", sure=False), kind="lookup", checks=CHECKS)
    assert "empty" in empty.reasons and empty.score <= HARD_FAIL_CAP
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    tools = judge(req, completion(None, tool_calls=(call,)), kind="lookup", checks=CHECKS)
    assert "empty" not in tools.reasons


def test_completeness_check_off_is_not_applied() -> None:
    verdict = judge(
        request("Summarize"),
        completion("A fine sum", finish="length"),
        kind="summarize",
        checks=["token_confidence"],
    )
    assert verdict.reasons == ()


# --- tool calls --------------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
]


def call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "t1", "type": "function", "function": {"name": name, "arguments": arguments}}


def test_tool_calls_are_checked_against_the_declared_tools() -> None:
    req = request("Where is A-12345?", tools=TOOLS)

    def reasons(tool_call: dict[str, Any]) -> tuple[str, ...]:
        c = completion(None, tool_calls=(tool_call,))
        return judge(req, c, kind="lookup", checks=CHECKS).reasons

    assert reasons(call("get_order", '{"order_id": "A-12345"}')) == ("no_logprobs",)
    assert reasons(call("cancel_order", '{"order_id": "A-12345"}'))[0] == "unknown_tool"
    assert reasons(call("get_order", '{"order_id": '))[0] == "invalid_json"
    assert reasons(call("get_order", '{"order": "A-12345"}'))[0] == "schema_mismatch"


# --- token statistics --------------------------------------------------------------------------


def test_low_value_token_in_valid_json_scores_low() -> None:
    req = request(TICKET, json_object=True)
    pieces = [('{"', 0.99), ("order_id", 0.99), ('":"', 0.99), ("A-123", 0.99), ("45", 0.06)]
    pieces += [('","', 0.99), ("amount", 0.99), ('":', 0.99), ("42.5", 0.99), ("}", 0.99)]
    text = "".join(t for t, _ in pieces)
    verdict = judge(req, completion(text, pieces), kind="format", checks=CHECKS)
    assert verdict.reasons == ("low_token_confidence",)
    assert verdict.token_min == pytest.approx(0.06)
    assert verdict.score < 0.3
    assert "'45'" in verdict.details


def test_low_brace_and_key_tokens_do_not_lower_the_score() -> None:
    req = request(TICKET, json_object=True)
    pieces = [('{"', 0.04), ("order", 0.05), ("_id", 0.1), ('":"', 0.2), ("A-123", 0.99)]
    pieces += [("45", 0.98), ('","', 0.3), ("amount", 0.02), ('":', 0.1), ("42.5", 0.97)]
    pieces += [("}", 0.01)]
    text = "".join(t for t, _ in pieces)
    verdict = judge(req, completion(text, pieces), kind="format", checks=CHECKS)
    assert verdict.reasons == ()
    assert verdict.token_min == pytest.approx(0.97)
    assert verdict.score > 0.95


def test_token_score_is_the_label_probability_for_a_one_token_label() -> None:
    req = request(system=LABEL_PROMPT)
    verdict = judge(req, completion("refund", [("refund", 0.62)]), kind="classify", checks=CHECKS)
    assert verdict.score == pytest.approx(0.62)
    assert verdict.token_min == verdict.token_p10 == pytest.approx(0.62)


def test_hard_failure_caps_even_a_confident_answer() -> None:
    req = request(system=LABEL_PROMPT)
    verdict = judge(req, completion("payment", [("payment", 0.99)]), kind="classify", checks=CHECKS)
    assert verdict.score == pytest.approx(HARD_FAIL_CAP * 0.99)


# --- no logprobs -------------------------------------------------------------------------------


def test_no_logprobs_falls_back_to_validators() -> None:
    req = request(system=LABEL_PROMPT)
    good = judge(req, completion("shipping", sure=False), kind="classify", checks=CHECKS)
    assert good.reasons == ("no_logprobs",)
    assert good.score == PRIOR_VALIDATED
    assert good.token_min is None and good.token_p10 is None
    assert "no logprobs" in good.details
    bad = judge(req, completion("payment", sure=False), kind="classify", checks=CHECKS)
    assert bad.reasons == ("label_not_allowed", "no_logprobs")
    assert bad.score == pytest.approx(HARD_FAIL_CAP * PRIOR_VALIDATED)


def test_no_logprobs_and_nothing_to_validate_is_unchecked() -> None:
    verdict = judge(
        request("Hi"), completion("Hello! How can I help?", sure=False), kind="draft", checks=CHECKS
    )
    assert verdict.score == PRIOR_UNCHECKED
    assert verdict.reasons == ("no_logprobs",)


def test_no_logprobs_uses_agreement_when_given() -> None:
    req = request(system=LABEL_PROMPT)
    checks = [*CHECKS, "agreement"]
    first = completion("refund", sure=False)
    same = judge(
        req, first, kind="classify", checks=checks, second=completion("Refund", sure=False)
    )
    assert same.score == 1.0 and same.agreement == 1.0
    differ = judge(
        req, first, kind="classify", checks=checks, second=completion("billing", sure=False)
    )
    assert differ.score == 0.0
    assert differ.reasons == ("no_logprobs", "disagreement")


# --- agreement ---------------------------------------------------------------------------------


def test_agreement_kinds() -> None:
    assert agreement(completion("Refund"), completion(" refund.")) == 1.0
    assert agreement(completion("refund"), completion("billing")) == 0.0
    assert agreement(completion('{"a": 1, "b": "X  y"}'), completion('{"b": "x y", "a": 1}')) == 1.0
    assert agreement(completion('{"a": 1, "b": 2}'), completion('{"a": 1, "b": 3}')) == 0.5
    long_a = "the parcel left our warehouse on monday and arrives friday"
    long_b = "the parcel left our warehouse on tuesday and arrives friday"
    assert agreement(completion(long_a), completion(long_b)) == pytest.approx(9 / 11)
    assert agreement(completion(""), completion("x")) == 0.0


def test_agreement_compares_tool_calls() -> None:
    a = completion(None, tool_calls=(call("get_order", '{"order_id": "A-1"}'),))
    b = completion(None, tool_calls=(call("get_order", '{"order_id":"A-1"}'),))
    c = completion(None, tool_calls=(call("get_order", '{"order_id": "A-2"}'),))
    assert agreement(a, b) == 1.0
    assert agreement(a, c) == 0.5


def test_agreement_lowers_a_confident_score_only_when_asked() -> None:
    req = request(system=LABEL_PROMPT)
    first, second = completion("refund"), completion("billing")
    without = judge(req, first, kind="classify", checks=CHECKS, second=second)
    assert without.score > 0.9 and "agreement" not in without.checks_run
    checks = [*CHECKS, "agreement"]
    with_it = judge(req, first, kind="classify", checks=checks, second=second)
    assert with_it.score == 0.0 and "disagreement" in with_it.reasons


# --- verdict and decide ------------------------------------------------------------------------


def test_unknown_check_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown checks"):
        judge(request(), completion("x"), kind="draft", checks=["vibes"])


def test_verdict_is_immutable() -> None:
    verdict = judge(request(), completion("x"), kind="draft", checks=CHECKS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.score = 1.0  # type: ignore[misc]


def verdict_of(score: float) -> Verdict:
    return Verdict(score=score, reasons=(), details="", checks_run=())


def test_decide_uses_threshold_per_kind_and_on_low() -> None:
    block = Escalation(min_confidence=0.7, on_low="escalate", to="ar", per_kind={"extract": 0.9})
    assert decide(verdict_of(0.7), block, "classify") == "accept"
    assert decide(verdict_of(0.69), block, "classify") == "escalate"
    assert decide(verdict_of(0.85), block, "extract") == "escalate"
    assert decide(verdict_of(0.9), block, "extract") == "accept"
    flag = Escalation(min_confidence=0.7, on_low="flag")
    assert decide(verdict_of(0.2), flag, "classify") == "flag"
    assert decide(verdict_of(0.0), None, "classify") == "accept"
