"""Step classifier: hints, structure, multilingual behaviour, shipped-weights accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gateway.classify.classifier import Classifier
from gateway.classify.commands import register
from gateway.classify.language import detect_language
from gateway.classify.model import WeightsError
from gateway.classify.train import evaluate, is_fast_route, read_steps
from gateway.core.errors import BadRequest
from gateway.core.types import ChatRequest
from gateway.policy.loader import load_policy
from gateway.routing import decide

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "support.yaml"
TEST_SPLIT = ROOT / "data" / "steps" / "test.jsonl"


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load()


@pytest.fixture(scope="module")
def policy() -> Any:
    return load_policy(POLICY)


def req(user: str, system: str | None = None, **extra: Any) -> ChatRequest:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    return ChatRequest.model_validate({"model": "auto", "messages": messages, **extra})


def tier(classifier: Classifier, policy: Any, request: ChatRequest) -> str:
    profile = classifier.classify(request, {})
    decision = decide(policy, profile, model="auto")
    return "fast" if is_fast_route(policy, decision.target) else "deep"


# --- accuracy of the shipped weights on the held-out split ---------------------------------


def test_shipped_weights_meet_tier_targets_on_test_split(
    classifier: Classifier, policy: Any
) -> None:
    steps = read_steps(TEST_SPLIT)
    assert len(steps) >= 150
    report = evaluate(classifier, steps, policy)
    # In distribution (the split shares templates with training). The shipped operating point
    # (max_p_deep 0.2) trades fast->deep for a low deep->fast rate, so tier accuracy sits near
    # 89% here; deep->fast is the dangerous error and stays at the floor.
    assert report.tier_accuracy >= 0.86, report.misses
    assert report.deep_steps >= 40
    assert report.deep_to_fast_rate <= 0.02, report.misses


# --- hints ------------------------------------------------------------------------------------


def test_header_hint_wins_over_structure_and_model(classifier: Classifier) -> None:
    request = req(
        "Extract the order id.",
        response_format={"type": "json_object"},
        metadata={"step_kind": "extract"},
    )
    profile = classifier.classify(request, {"x-step-kind": "Reason", "x-latency-budget-ms": "250"})
    assert profile.kind == "reason"
    assert profile.evidence == "hint"
    assert profile.latency_budget_ms == 250
    assert profile.signals[:2] == ("hint:latency_budget_ms=250", "hint:kind=reason")


@pytest.mark.parametrize(
    ("key", "budget_key"),
    [("X-Step-Kind", "X-Latency-Budget-Ms"), ("step_kind", "latency_budget_ms")],
)
def test_metadata_hints_win(classifier: Classifier, key: str, budget_key: str) -> None:
    request = req(
        "Can we refund order 123 given policy A and B? Decide.",
        metadata={key: "classify", budget_key: "900"},
    )
    profile = classifier.classify(request, {})
    assert (profile.kind, profile.evidence, profile.latency_budget_ms) == ("classify", "hint", 900)


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"x-step-kind": "ponder"}, "X-Step-Kind"),
        ({"x-latency-budget-ms": "fast"}, "X-Latency-Budget-Ms"),
        ({"x-latency-budget-ms": "0"}, "X-Latency-Budget-Ms"),
    ],
)
def test_bad_hint_is_bad_request(
    classifier: Classifier, headers: dict[str, str], param: str
) -> None:
    with pytest.raises(BadRequest) as err:
        classifier.classify(req("hello"), headers)
    assert err.value.param == param


def test_bad_metadata_hint_is_bad_request(classifier: Classifier) -> None:
    with pytest.raises(BadRequest):
        classifier.classify(req("hello", metadata={"step_kind": "guess"}), {})


# --- structure --------------------------------------------------------------------------------


def test_json_schema_sets_expects_json_and_signal(classifier: Classifier) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "fields",
            "schema": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "email": {"type": "string"}},
            },
        },
    }
    profile = classifier.classify(
        req(
            "Order 4411 never arrived, mail me at a@b.com",
            "Pull out order_id and email.",
            response_format=schema,
        ),
        {},
    )
    assert profile.expects_json
    assert profile.kind == "extract"
    assert "structure:json_schema" in profile.signals
    assert any(s.startswith("model:kind=extract p=") for s in profile.signals)


def test_profile_fields(classifier: Classifier) -> None:
    tools = [{"type": "function", "function": {"name": "get_order"}}]
    request = ChatRequest.model_validate(
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "You are a support agent."},
                {"role": "user", "content": "Where is my order?"},
                {"role": "assistant", "content": "Let me check."},
                {"role": "user", "content": "It is order 123, please hurry."},
            ],
            "tools": tools,
            "max_tokens": 7,
        }
    )
    profile = classifier.classify(request, {})
    assert profile.has_tools and not profile.expects_json
    assert profile.turns == 2
    assert profile.expected_output_tokens <= 7
    assert profile.latency_budget_ms is None
    assert profile.evidence in ("structure", "model")
    assert 0.0 <= profile.difficulty <= 1.0


def test_prompt_tokens_estimate_counts_cjk_per_character(classifier: Classifier) -> None:
    en = classifier.classify(req("a" * 4000), {})
    ja = classifier.classify(req("返金" * 1000), {})
    assert 900 <= en.prompt_tokens <= 1100
    assert 1800 <= ja.prompt_tokens <= 2200


def test_long_summary_goes_deep_and_short_summary_fast(classifier: Classifier, policy: Any) -> None:
    turn = (
        "Customer: The router drops every evening and your last fix did not help at all.\n"
        "Agent: I'm sorry, I have reset the line and booked an engineer for Thursday.\n"
    )
    short = req("Summarize this conversation in 3 bullet points for the next agent.\n\n" + turn * 3)
    long = req(
        "Summarize this conversation in 3 bullet points for the next agent.\n\n" + turn * 250
    )
    assert classifier.classify(short, {}).kind == "summarize"
    assert classifier.classify(long, {}).prompt_tokens > 6000
    assert tier(classifier, policy, short) == "fast"
    assert tier(classifier, policy, long) == "deep"


# --- behaviour on unseen, hand-written steps --------------------------------------------------


FAST_CASES = [
    (
        "en",
        "Classify this ticket as one of: billing, shipping, technical, other. Label only.\n\n"
        "Can you explain why I was charged twice this month?",
    ),
    (
        "es",
        "Clasifica el mensaje en una de estas categorías: facturación, envío, técnico. "
        "Responde solo con la etiqueta.\n\nMi paquete lleva dos semanas sin moverse.",
    ),
    (
        "de",
        "Ordne die Nachricht genau einer Kategorie zu: Rechnung, Versand, Technik. Antworte "
        "nur mit dem Label.\n\nIch kann mich seit gestern nicht mehr einloggen.",
    ),
    (
        "fr",
        "Classe ce message dans une seule catégorie : facturation, livraison, technique. "
        "Réponds seulement l'étiquette.\n\nMon colis n'est jamais arrivé.",
    ),
    (
        "pt",
        "Classifique a mensagem em uma das categorias: cobrança, entrega, técnico. Responda "
        "apenas o rótulo.\n\nMinha fatura veio com um valor errado.",
    ),
    (
        "ja",
        "次の問い合わせを請求、配送、技術のいずれかに分類してください。ラベルのみで回答してください。\n\n"
        "先月の請求額が間違っています。",
    ),
]


@pytest.mark.parametrize(("lang", "text"), FAST_CASES, ids=[c[0] for c in FAST_CASES])
def test_multilingual_classify_steps_go_fast(
    classifier: Classifier, policy: Any, lang: str, text: str
) -> None:
    request = req(text, max_tokens=5)
    profile = classifier.classify(request, {})
    assert profile.kind == "classify", profile.signals
    assert profile.language == lang
    assert tier(classifier, policy, request) == "fast"


DEEP_CASES = [
    (
        "en",
        "Can we refund order 123 given policy A (30-day window) and policy B (final sale "
        "items are never refunded)? It was final sale, bought 9 days ago. Decide.",
    ),
    (
        "en",
        "Write a warm reply to this customer apologising for three failed deliveries and "
        "offering a voucher.",
    ),
    (
        "ja",
        "規定A: 購入後30日以内は返金可能。規定B: セール品は返金不可。"
        "お客様はセール品を5日前に購入しました。"
        "どちらの規定が優先されるか検討し、返金できるか判断してください。",
    ),
    (
        "de",
        "Richtlinie 1 erlaubt Erstattungen innerhalb von 14 Tagen, Richtlinie 2 verbietet sie "
        "nach Nutzung. Der Kunde hat das Produkt 3 Tage benutzt. Entscheide und begründe.",
    ),
]


@pytest.mark.parametrize(
    ("lang", "text"), DEEP_CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(DEEP_CASES)]
)
def test_reasoning_and_drafting_steps_go_deep(
    classifier: Classifier, policy: Any, lang: str, text: str
) -> None:
    profile = classifier.classify(req(text), {})
    assert profile.kind in ("reason", "draft"), profile.signals
    assert profile.language == lang
    assert tier(classifier, policy, req(text)) == "deep"


def test_kb_lookup_goes_fast(classifier: Classifier, policy: Any) -> None:
    request = req(
        "Knowledge base:\n[KB-7] Gift cards never expire and cannot be refunded.\n\n"
        "Customer question: do gift cards expire?",
        "Answer using only the knowledge base articles. Cite the article id.",
    )
    assert classifier.classify(request, {}).kind == "lookup"
    assert tier(classifier, policy, request) == "fast"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Hola, mi pedido no ha llegado y necesito una solución para el viernes.", "es"),
        ("Hallo, meine Bestellung ist nicht angekommen und ich brauche Hilfe.", "de"),
        ("Bonjour, ma commande n'est pas arrivée et je voudrais un remboursement.", "fr"),
        ("Olá, meu pedido não chegou e eu preciso de uma solução.", "pt"),
        ("Ciao, il mio ordine non è arrivato e sono molto deluso del servizio.", "it"),
        ("Hallo, mijn bestelling is niet aangekomen en ik wil graag mijn geld terug.", "nl"),
        ("注文した商品がまだ届きません。", "ja"),
        ("我的订单还没有到。", "zh"),
        ("주문한 상품이 아직 도착하지 않았습니다.", "ko"),
        ("Hi, my order has not arrived and I would like a refund.", "en"),
    ],
)
def test_language_guess(text: str, lang: str) -> None:
    assert detect_language(text) == lang


# --- weights file and CLI ---------------------------------------------------------------------


def test_load_rejects_missing_and_malformed_weights(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="cannot read"):
        Classifier.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(WeightsError, match="format"):
        Classifier.load(bad)


def test_train_command_writes_weights_and_reports(tmp_path: Path) -> None:
    lines = [line for line in TEST_SPLIT.read_text(encoding="utf-8").splitlines() if line]
    data = tmp_path / "steps.jsonl"
    data.write_text("\n".join(lines[::3]) + "\n", encoding="utf-8")
    held_out = tmp_path / "held.jsonl"
    held_out.write_text("\n".join(lines[1::7]) + "\n", encoding="utf-8")
    out = tmp_path / "w.json"
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Stepgate (test app)."""

    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "classifier",
            "train",
            str(data),
            "--out",
            str(out),
            "--test",
            str(held_out),
            "--val",
            str(held_out),
            "--policy",
            str(POLICY),
            "--iterations",
            "60",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test:" in result.output and "tier accuracy" in result.output
    assert "deep->fast" in result.output
    trained = Classifier.load(out)
    assert trained.model.calibration != (1.0, 0.0)  # fitted on --val
    profile = trained.classify(req("Classify as one of: billing, shipping. Label only.\n\nhi"), {})
    assert profile.kind == "classify"
    evaluated = runner.invoke(
        app,
        ["classifier", "eval", str(held_out), "--weights", str(out), "--policy", str(POLICY),
         "--curve"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert "tier (labeled" in evaluated.output and "kind (labeled" in evaluated.output
    assert "max_p_deep  served fast" in evaluated.output


def test_train_command_reports_malformed_line(tmp_path: Path) -> None:
    data = tmp_path / "steps.jsonl"
    data.write_text(
        '{"id": "a", "request": {"model": "auto"}, "kind": "classify", "tier": "fast"}\n',
        encoding="utf-8",
    )
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Stepgate (test app)."""

    result = CliRunner().invoke(
        app, ["classifier", "train", str(data), "--out", str(tmp_path / "w.json")]
    )
    assert result.exit_code == 1
    assert "steps.jsonl:1:" in result.output
