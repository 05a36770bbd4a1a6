"""Calibration: threshold search, traffic parsing, the `calibrate` command, the shipped sample."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from gateway.confidence.calibrate import calibrate, choose_threshold, read_samples
from gateway.confidence.commands import register

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = DATA / "calibration_sample.jsonl"
LABEL_PROMPT = "Classify the ticket. Answer with one of: billing, shipping, refund."


def app() -> typer.Typer:
    cli = typer.Typer()
    register(cli)

    @cli.command()
    def version() -> None:  # a second command, so `calibrate` stays a named subcommand
        typer.echo("0")

    return cli


def record(n: int, *, answer: str, p: float, correct: bool, kind: str = "classify") -> str:
    """One traffic line: a one-token label answered with probability `p`."""
    body = {
        "id": f"r{n}",
        "kind": kind,
        "request": {
            "model": "auto",
            "messages": [
                {"role": "system", "content": LABEL_PROMPT},
                {"role": "user", "content": "I was charged twice"},
            ],
        },
        "response": {
            "id": f"chatcmpl-{n}",
            "model": "dllm",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                    "logprobs": {"content": [{"token": answer, "logprob": math.log(p)}]},
                }
            ],
            "usage": {"prompt_tokens": 30, "completion_tokens": 1},
        },
        "correct": correct,
    }
    return orjson.dumps(body).decode()


def crafted() -> list[str]:
    """A set whose right threshold is known: a one-token label scores its probability.

    classify, target 2%:
      49 right + 1 wrong at 0.95 -> accepting >= 0.95: 1/50 wrong (2.0%, holds)
      10 right at 0.70           -> accepting >= 0.70: 1/60 wrong (1.7%, holds)  <- lowest
       3 wrong at 0.65           -> accepting >= 0.65: 4/63 wrong (6.3%, fails)
       1 wrong label outside the set, sure (0.99) -> capped to 0.198
    extract: 5 right answers -> threshold 0, nothing escalated.
    """
    lines: list[str] = []
    for _ in range(49):
        lines.append(record(len(lines), answer="billing", p=0.95, correct=True))
    lines.append(record(len(lines), answer="refund", p=0.95, correct=False))
    for _ in range(10):
        lines.append(record(len(lines), answer="shipping", p=0.70, correct=True))
    for _ in range(3):
        lines.append(record(len(lines), answer="refund", p=0.65, correct=False))
    lines.append(record(len(lines), answer="payment", p=0.99, correct=False))
    for _ in range(5):
        lines.append(record(len(lines), answer="billing", p=0.9, correct=True, kind="extract"))
    return lines


# --- threshold search --------------------------------------------------------------------------


def test_choose_threshold_finds_the_lowest_that_holds_the_target() -> None:
    wrong_at = {10, 20, 30, 50, 75}
    scored = [(i / 100, i not in wrong_at) for i in range(1, 101)]
    result = choose_threshold("classify", scored, target=0.02)
    # >= 0.51 accepts 50 answers with one wrong (0.75): 2.0%; >= 0.50 accepts 51 with two
    assert result.threshold == pytest.approx(0.51, abs=0.0011)
    assert (result.accepted, result.wrong_accepted) == (50, 1)
    assert result.escalation_rate == pytest.approx(0.5)
    assert result.wrong == 5


def test_choose_threshold_accepts_everything_when_wrong_answers_are_rare() -> None:
    scored = [(0.3, True)] * 60 + [(0.9, False)]
    result = choose_threshold("lookup", scored, target=0.02)
    assert result.threshold == 0.0 and result.escalation_rate == 0.0


def test_choose_threshold_reports_when_no_threshold_works() -> None:
    scored = [(0.99, False), (0.5, True), (0.4, True)]
    result = choose_threshold("extract", scored, target=0.02)
    assert result.threshold is None and result.escalation_rate == 1.0
    assert "escalate every answer" in result.note


def test_choose_threshold_notes_small_samples() -> None:
    result = choose_threshold("format", [(0.9, True)] * 10, target=0.02)
    assert "only 10 samples" in result.note


def test_calibrate_on_a_crafted_set() -> None:
    samples, errors = read_samples(crafted())
    assert errors == []
    result = calibrate(samples, target=0.02)
    by_kind = {k.kind: k for k in result.kinds}
    classify = by_kind["classify"]
    assert classify.threshold == pytest.approx(0.70, abs=0.0011)
    assert (classify.samples, classify.accepted, classify.wrong_accepted) == (64, 60, 1)
    assert classify.escalation_rate == pytest.approx(4 / 64)
    assert by_kind["extract"].threshold == 0.0
    assert by_kind["extract"].escalation_rate == 0.0
    # a looser target accepts the 0.65 answers too (4/63 = 6.3%), not everything (5/64 = 7.8%)
    loose = {k.kind: k for k in calibrate(samples, target=0.07).kinds}["classify"]
    assert loose.threshold == pytest.approx(0.65, abs=0.0011)


# --- traffic parsing ---------------------------------------------------------------------------


def test_read_samples_reports_bad_lines_with_numbers_and_keeps_going() -> None:
    good = record(0, answer="billing", p=0.9, correct=True)
    raw: dict[str, Any] = orjson.loads(good)
    lines = [
        good,
        "{not json",
        orjson.dumps({**raw, "kind": "chitchat"}).decode(),
        orjson.dumps({**raw, "correct": "yes"}).decode(),
        orjson.dumps({**raw, "request": {"model": "auto", "messages": []}}).decode(),
        orjson.dumps({**raw, "response": {"choices": []}}).decode(),
        "",
        good,
    ]
    samples, errors = read_samples(lines)
    assert len(samples) == 2
    assert [e.line for e in errors] == [2, 3, 4, 5, 6]
    assert "not valid JSON" in errors[0].message
    assert "'kind' must be one of" in errors[1].message
    assert "'correct' must be true or false" in errors[2].message
    assert errors[3].message.startswith("request.messages")
    assert "response.choices" in errors[4].message


def test_read_samples_keeps_logprobs_and_a_second_sample() -> None:
    raw = orjson.loads(record(0, answer="billing", p=0.5, correct=True))
    raw["second"] = raw["response"]
    (sample,), _ = read_samples([orjson.dumps(raw).decode()])
    assert sample.completion.logprobs is not None
    assert sample.completion.logprobs[0].token == "billing"
    assert sample.second is not None and sample.second.content == "billing"


# --- the command -------------------------------------------------------------------------------


def test_command_json_output_and_malformed_lines(tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    lines = crafted()
    lines.insert(3, "garbage")
    traffic.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app(), ["calibrate", "--traffic", str(traffic), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert f"{traffic}:4: not valid JSON" in result.stderr
    body = orjson.loads(result.stdout)
    assert body["target"] == 0.02
    assert body["skipped_lines"][0]["line"] == 4
    classify = next(k for k in body["kinds"] if k["kind"] == "classify")
    assert classify["threshold"] == pytest.approx(0.70, abs=0.0011)
    assert classify["escalation_rate"] == pytest.approx(4 / 64)


def test_command_table_output_with_target(tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("\n".join(crafted()) + "\n")
    result = CliRunner().invoke(app(), ["calibrate", "--traffic", str(traffic), "--target", "0.07"])
    assert result.exit_code == 0, result.output
    table = result.stdout.split("\n\n")[0].splitlines()
    rows = {line.split()[0]: line.split() for line in table[2:]}
    assert rows["classify"][3] in ("0.649", "0.650")
    assert rows["extract"][3] == "0.000"
    assert "wrong among accepted <= 7.0%" in result.stdout


def test_command_fails_without_usable_lines(tmp_path: Path) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("nope\n")
    result = CliRunner().invoke(app(), ["calibrate", "--traffic", str(traffic)])
    assert result.exit_code == 1
    assert "no usable lines" in result.stderr


def test_command_rejects_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app(), ["calibrate", "--traffic", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2


# --- the shipped sample ------------------------------------------------------------------------


def test_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_sample", DATA / "make_calibration_sample.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "sample.jsonl"
    module.main(["make", str(out)])
    assert out.read_bytes() == SAMPLE.read_bytes()


def test_sample_calibrates_every_kind_under_target() -> None:
    samples, errors = read_samples(SAMPLE.read_text().splitlines())
    assert errors == [] and len(samples) >= 300
    result = calibrate(samples, target=0.02)
    assert {k.kind for k in result.kinds} == {"classify", "extract", "lookup", "summarize"}
    for kind in result.kinds:
        assert kind.threshold is not None
        assert kind.wrong_rate_accepted <= 0.02
        # the checks separate right from wrong: most answers are kept at that threshold
        assert kind.escalation_rate < 0.5, kind


def test_command_prints_the_per_kind_block_to_paste_and_the_policy_takes_it(
    tmp_path: Path,
) -> None:
    import yaml

    from gateway.policy.models import Escalation

    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("\n".join(crafted()) + "\n")
    table = CliRunner().invoke(app(), ["calibrate", "--traffic", str(traffic)])
    assert table.exit_code == 0, table.output
    pasted = yaml.safe_load(table.stdout.split("(policies/*.yaml):\n", 1)[1])
    body = orjson.loads(
        CliRunner()
        .invoke(app(), ["calibrate", "--traffic", str(traffic), "--format", "json"])
        .stdout
    )
    assert yaml.safe_load(body["policy_yaml"]) == pasted
    for k in body["kinds"]:
        got = pasted["per_kind"][k["kind"]]
        if k["threshold"] is None:
            assert got == 1.0  # nothing holds the target: every answer escalates
        else:  # rounded up, never below what was measured
            assert k["threshold"] <= got < k["threshold"] + 0.001 + 1e-12
    escalation = Escalation(min_confidence=0.7, to="ar", per_kind=pasted["per_kind"])
    assert set(escalation.per_kind) == {k["kind"] for k in body["kinds"]}
