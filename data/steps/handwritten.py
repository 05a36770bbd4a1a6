# ruff: noqa: E501, RUF001  (data: natural-language literals, full-width punctuation is correct in ja)
"""Hand-written steps, mostly traps: classify steps that say "explain", brief reason steps,
short drafts, extraction with schemas from long text, lookups that look like questions."""

from __future__ import annotations

from typing import Any


def _req(system: str | None, user: str, **extra: Any) -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    return {"model": "auto", "messages": messages, **extra}


_ROWS: list[tuple[str, str, str, dict[str, Any]]] = [
    # (kind, tier, lang, request)
    (
        "reason",
        "deep",
        "en",
        _req(
            None,
            "Can we refund order 123 given policy A (30-day window) "
            "and policy B (no refunds on final sale)? The item was final sale, bought 12 days ago. Decide.",
        ),
    ),
    (
        "reason",
        "deep",
        "en",
        _req(
            None,
            "Refund or not? Order 88123, delivered 41 days ago, "
            "customer says it never worked. Policy: 30-day returns; warranty 1 year covers defects. "
            "Answer refund, repair or deny.",
            max_tokens=10,
        ),
    ),
    (
        "reason",
        "deep",
        "en",
        _req(
            "You are the refunds desk.",
            "Customer had 4 refunds in 60 "
            "days. Policy R4 needs manager approval above 3; Policy R3 says damaged items are always "
            "replaced. Item arrived damaged with photo. Replace, refund, or escalate? One word.",
        ),
    ),
    (
        "reason",
        "deep",
        "en",
        _req(
            None,
            "Prorate: annual plan 1,200 bought Mar 1, downgraded "
            "Jun 15 to 600/yr. Policy B1 allows pro-rata refunds only in the first 30 days, B2 allows "
            "downgrade credits. What credit, if any, do we issue? Show the numbers.",
        ),
    ),
    (
        "reason",
        "deep",
        "en",
        _req(
            None,
            "Is a 4h10m outage on a Business plan with a 99.9% "
            "SLA and a 50 invoice worth a credit, and how much, if credits can't exceed the invoice?",
        ),
    ),
    (
        "reason",
        "deep",
        "es",
        _req(
            None,
            "Política A: reembolso en 30 días. Política B: los "
            "artículos en oferta final no se reembolsan. Política C: defectos siempre se reparan. El "
            "cliente compró en oferta final hace 10 días y el producto tiene un defecto. ¿Qué hacemos? "
            "Decide y justifica.",
        ),
    ),
    (
        "reason",
        "deep",
        "de",
        _req(
            None,
            "Richtlinie 1: Erstattung innerhalb 14 Tagen. Richtlinie "
            "2: Keine Erstattung, wenn Währung ausgegeben wurde. Der Kunde hat 30% ausgegeben und "
            "kaufte vor 5 Tagen. Erstatten wir teilweise, ganz oder gar nicht? Begründe.",
        ),
    ),
    (
        "reason",
        "deep",
        "fr",
        _req(
            None,
            "Politique 1 : remboursement sous 30 jours. Politique "
            "2 : frais de livraison remboursés seulement si l'article est défectueux. Le client renvoie "
            "un article non défectueux après 20 jours. Que remboursons-nous exactement ? Décide.",
        ),
    ),
    (
        "reason",
        "deep",
        "pt",
        _req(
            None,
            "Política 1: reembolso em até 7 dias. Política 2: "
            "produtos com defeito têm garantia de 90 dias. O cliente reclamou no dia 40 de um defeito. "
            "Reembolsamos, trocamos ou negamos? Explique o raciocínio.",
        ),
    ),
    (
        "reason",
        "deep",
        "ja",
        _req(
            None,
            "規定A：購入後30日以内は返金可能。規定B：セール品は返金不可。"
            "規定C：初期不良は常に交換。お客様はセール品を12日前に購入し、初期不良を報告しています。"
            "返金・交換・拒否のどれにすべきか、理由とともに判断してください。",
        ),
    ),
    (
        "reason",
        "deep",
        "ja",
        _req(
            "あなたは返金審査担当です。",
            "複数の規定が矛盾しています。"
            "規定1は14日以内の返金を認め、規定2は通貨を使用した場合の返金を禁止しています。"
            "お客様は3日前に購入し、2割を使用済みです。どちらの規定を優先すべきか判断してください。",
        ),
    ),
    (
        "classify",
        "fast",
        "en",
        _req(
            "Classify the ticket. Labels:\n- explain_bill\n- "
            "refund\n- technical\n- other\nOutput the label only.",
            "Can you explain why my bill went up this month? I didn't change anything.",
            max_tokens=5,
        ),
    ),
    (
        "classify",
        "fast",
        "en",
        _req(
            None,
            "Explain which category fits best? No — just output "
            "one of: billing, technical, account. Ticket: 'I can't reset my password, the link expired.'",
            max_tokens=3,
        ),
    ),
    (
        "classify",
        "fast",
        "en",
        _req(
            "Decide whether the message is spam. yes/no.",
            "CONGRATULATIONS you won a free cruise, click here to claim!!!",
            max_tokens=1,
        ),
    ),
    (
        "classify",
        "fast",
        "en",
        _req(
            None,
            "Does this customer want to cancel? Answer yes or no.\n"
            '"Honestly thinking about switching providers if this keeps happening."',
            max_tokens=2,
        ),
    ),
    (
        "classify",
        "fast",
        "es",
        _req(
            None,
            "Clasifica: facturación, envío, técnico u otro.\n"
            '"No me llega el código de verificación por SMS"',
            max_tokens=4,
        ),
    ),
    (
        "classify",
        "fast",
        "de",
        _req(
            None,
            "Kategorie (Rechnung/Versand/Technik/Sonstiges)?\n"
            '"Mein Paket ist seit einer Woche unterwegs."',
            max_tokens=4,
        ),
    ),
    (
        "classify",
        "fast",
        "fr",
        _req(
            None,
            "Catégorie parmi : facturation, livraison, technique, "
            "autre.\n« Je n'arrive pas à me connecter à l'application. »",
            max_tokens=4,
        ),
    ),
    (
        "classify",
        "fast",
        "pt",
        _req(
            None,
            'Categoria: cobrança, entrega, técnico ou outro?\n"Fui cobrado duas vezes no cartão."',
            max_tokens=4,
        ),
    ),
    (
        "classify",
        "fast",
        "ja",
        _req(
            None,
            "次の問い合わせの種類を答えてください（請求／配送／技術／その他）。\n"
            "「荷物がまだ届きません。」",
            max_tokens=4,
        ),
    ),
    (
        "extract",
        "fast",
        "en",
        _req(
            None,
            "Get the IBAN and the account holder from this.\n"
            "Please refund to DE89 3704 0044 0532 0130 00, holder Jonas Becker. Thanks!",
            response_format={"type": "json_object"},
        ),
    ),
    (
        "extract",
        "fast",
        "en",
        _req(
            "Return the tracking numbers in the e-mail as a JSON array.",
            "Hi, I got two parcels: 1Z999AA10123456784 and 1Z999AA10123456799, but only one arrived.",
        ),
    ),
    (
        "extract",
        "fast",
        "ja",
        _req(
            None,
            "次の文から予約番号と日付を抽出してJSONで返してください。\n"
            "予約番号BK20931で4月2日に宿泊予定です。",
            response_format={"type": "json_object"},
        ),
    ),
    (
        "format",
        "fast",
        "en",
        _req(
            None,
            "Make this sound less robotic but keep it to one "
            "sentence: 'Your request has been processed. The refund is completed.'",
            max_tokens=60,
        ),
    ),
    (
        "format",
        "fast",
        "en",
        _req(
            None,
            "Convert to a table with columns item, qty, price:\n"
            "2x USB-C cable 9.99\n1x charger 24.50\n3x screen protector 5.00",
        ),
    ),
    (
        "format",
        "fast",
        "de",
        _req(
            None,
            "Bitte formatiere als Aufzählung:\nRückgabe bis 30 Tage, "
            "Versand kostenlos, Erstattung in 5 Tagen.",
        ),
    ),
    (
        "lookup",
        "fast",
        "en",
        _req(
            "Answer only from the policy text. Quote it.",
            "Policy text: "
            "'Gift cards are non-refundable and never expire.'\nQuestion: do gift cards expire?",
            max_tokens=60,
        ),
    ),
    (
        "lookup",
        "fast",
        "en",
        _req(
            None,
            "From the FAQ below, what's the return window for "
            "electronics?\nFAQ: Electronics: 14 days. Clothing: 30 days. Furniture: 60 days.",
        ),
    ),
    (
        "lookup",
        "fast",
        "fr",
        _req(
            None,
            "D'après l'article ci-dessous, quel est le délai de "
            "rétractation ?\nArticle : Vous disposez de 14 jours pour vous rétracter après réception.",
        ),
    ),
    (
        "draft",
        "deep",
        "en",
        _req(
            None,
            "Write a one-line reply telling the customer we received "
            "their photo and will replace the item.",
        ),
    ),
    (
        "draft",
        "deep",
        "en",
        _req(
            "You are a senior support agent.",
            "Customer is furious about "
            "3 failed deliveries and threatens a chargeback. Draft a reply that de-escalates, explains "
            "what happened and offers a concrete fix.",
        ),
    ),
    (
        "draft",
        "deep",
        "es",
        _req(
            None,
            "Escribe un correo al cliente explicando que su reembolso "
            "fue rechazado por la política de ofertas finales, con empatía y una alternativa.",
        ),
    ),
    (
        "draft",
        "deep",
        "ja",
        _req(
            None,
            "配送が3回失敗したことについて、お客様へのお詫びのメールを書いてください。"
            "次回の配送日時の提案も含めてください。",
        ),
    ),
    (
        "summarize",
        "fast",
        "en",
        _req(
            None,
            "Summarize in one sentence: customer says the app "
            "crashes when uploading photos over 10MB on Android 14; reinstall did not help; wants a fix "
            "before Friday.",
        ),
    ),
    (
        "summarize",
        "fast",
        "de",
        _req(
            None,
            "Fasse kurz zusammen: Kunde meldet seit drei Tagen "
            "Internetabbrüche am Abend, Router wurde getauscht, Problem besteht weiter, Techniker "
            "gewünscht.",
        ),
    ),
    (
        "summarize",
        "fast",
        "ja",
        _req(
            None,
            "次の内容を一文で要約してください：お客様はアプリで写真を"
            "アップロードすると落ちると報告。再インストールしても改善せず、金曜日までに解決を希望。",
        ),
    ),
]


def rows() -> list[dict[str, Any]]:
    return [
        {
            "id": f"hw-{i:03d}",
            "request": req,
            "kind": kind,
            "tier": tier,
            "lang": lang,
            "domain": "handwritten",
        }
        for i, (kind, tier, lang, req) in enumerate(_ROWS)
    ]
