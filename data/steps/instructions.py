# ruff: noqa: E501  (natural-language data literals)
"""Localised task instructions for generate.py, per step kind and language.

Each template may use {labels} (classify), {fields} (extract), {target} (format).
"""

from __future__ import annotations

CLASSIFY: dict[str, list[str]] = {
    "en": [
        "Classify the customer message into exactly one of: {labels}. Answer with the label only.",
        "You are a ticket router. Pick one category for the ticket below.\nCategories: {labels}\n"
        "Reply with the category name and nothing else.",
        "What is the intent of this message? Choose from {labels}.",
        "Tag this ticket. Allowed values: {labels}. Output one word.",
        "Label the sentiment of the customer's last message: {labels}.",
        "Which queue should this go to? Options: {labels}. Do not explain, just the queue.",
        "Read the ticket and return its priority ({labels}).",
        "Explain nothing; output only the label from {labels} that best fits this ticket.",
    ],
    "es": [
        "Clasifica el mensaje del cliente en una de estas categorías: {labels}. Responde solo "
        "con la etiqueta.",
        "¿Cuál es la intención del cliente? Elige una de: {labels}.",
    ],
    "de": [
        "Ordne die Kundennachricht genau einer der Kategorien zu: {labels}. Antworte nur mit "
        "dem Label.",
        "Welche Priorität hat dieses Ticket? Wähle eine der Optionen: {labels}.",
    ],
    "fr": [
        "Classe le message du client dans une seule des catégories suivantes : {labels}. "
        "Réponds seulement l'étiquette.",
        "Quelle est l'intention du client ? Choisis l'une des options : {labels}.",
    ],
    "pt": [
        "Classifique a mensagem do cliente em uma das categorias: {labels}. Responda apenas o "
        "rótulo.",
        "Qual é a intenção do cliente? Escolha um dos rótulos: {labels}.",
    ],
    "ja": [
        "次の問い合わせを{labels}のいずれかに分類してください。ラベルのみで回答してください。",
        "このチケットの優先度を{labels}から1つ選んでください。",
    ],
}

EXTRACT: dict[str, list[str]] = {
    "en": [
        "Extract the following fields from the customer message: {fields}. Use null for "
        "anything missing.",
        "Pull out {fields} from the ticket below and return them as JSON.",
        "From this message, get {fields}. Return key: value lines.",
        "Find every order number and email address mentioned in the text. Fields: {fields}.",
    ],
    "es": ["Extrae los siguientes campos del mensaje: {fields}. Usa null si falta alguno."],
    "de": ["Extrahiere folgende Felder aus der Nachricht: {fields}. Fehlende Werte als null."],
    "fr": ["Extrais les champs suivants du message : {fields}. Mets null si absent."],
    "pt": ["Extraia os seguintes campos da mensagem: {fields}. Use null quando faltar."],
    "ja": ["次のメッセージから{fields}を抽出してください。ない項目はnullにしてください。"],
}

FORMAT: dict[str, list[str]] = {
    "en": [
        "Rewrite the reply below as {target}. Do not change the facts.",
        "Reformat this agent reply as {target}. Keep every number and date exactly.",
        "Fix spelling, capitalisation and punctuation in this reply. Do not add content.",
        "Shorten this reply to fit one SMS (160 characters max).",
        "Convert all dates in this text to ISO 8601 (YYYY-MM-DD) and return the text.",
        "Mask any email addresses and phone numbers in the text with [REDACTED].",
        "Translate this reply into {target_lang}, keeping the formatting.",
        "Turn this reply into a markdown bullet list, one fact per bullet.",
    ],
    "es": ["Reescribe esta respuesta como {target}. No cambies los datos."],
    "de": ["Formatiere diese Antwort als {target}. Ändere keine Fakten."],
    "fr": ["Reformate cette réponse en {target}. Ne change pas les faits."],
    "pt": ["Reformate esta resposta como {target}. Não altere os dados."],
    "ja": ["次の返信を{target}の形式に整えてください。内容は変えないでください。"],
}

LOOKUP: dict[str, list[str]] = {
    "en": [
        "Answer the customer's question using only the knowledge base articles below. Quote the "
        'article id. If the answer is not there, say "not in KB".',
        "Using the snippets provided, what does our help center say about the customer's "
        "question? One or two sentences, cite the snippet.",
        "Find the KB article that answers this question and return its id and the relevant "
        "sentence.",
    ],
    "es": [
        "Responde a la pregunta del cliente usando solo los artículos de la base de "
        "conocimiento. Cita el id del artículo."
    ],
    "de": [
        "Beantworte die Frage des Kunden nur mit den folgenden Wissensdatenbank-Artikeln. "
        "Nenne die Artikel-ID."
    ],
    "fr": [
        "Réponds à la question du client uniquement avec les articles de la base de "
        "connaissances ci-dessous. Cite l'identifiant."
    ],
    "pt": [
        "Responda à pergunta do cliente usando apenas os artigos da base de conhecimento "
        "abaixo. Cite o id do artigo."
    ],
    "ja": [
        "以下のナレッジベース記事だけを使って、お客様の質問に答えてください。記事IDを引用してください。"
    ],
}

SUMMARIZE: dict[str, list[str]] = {
    "en": [
        "Summarize this conversation in 3 bullet points for the next agent.",
        "Write a short handover note: what the customer wants, what was done, what is open.",
        "TL;DR of the ticket thread below in two sentences.",
        "Summarise the case history for the supervisor. Keep it under 120 words.",
        "Give me a recap of this ticket for the escalation team.",
        "Condense the thread into a brief case summary (issue, actions taken, status).",
        "Summarize the customer's problem in one line for the ticket title.",
        "Create a short internal summary of this chat for the CRM notes.",
        "Briefly sum up what happened in this conversation.",
    ],
    "es": [
        "Resume esta conversación en 3 puntos para el siguiente agente.",
        "Haz un resumen breve del caso para las notas internas.",
    ],
    "de": [
        "Fasse dieses Gespräch in 3 Stichpunkten für den nächsten Agenten zusammen.",
        "Erstelle eine kurze Zusammenfassung des Falls für die interne Notiz.",
    ],
    "fr": [
        "Résume cette conversation en 3 points pour le prochain agent.",
        "Fais un bref résumé du dossier pour les notes internes.",
    ],
    "pt": [
        "Resuma esta conversa em 3 tópicos para o próximo atendente.",
        "Faça um resumo breve do caso para as notas internas.",
    ],
    "ja": [
        "この会話を次の担当者向けに3つの箇条書きで要約してください。",
        "このやり取りの要点を社内メモ用に短くまとめてください。",
    ],
}

DRAFT: dict[str, list[str]] = {
    "en": [
        "Write the next reply to the customer. Be warm, take ownership, and propose a concrete "
        "next step.",
        "Draft an email to the customer apologising for the issue and offering {offer}.",
        "Compose a reply that declines the refund politely but keeps the customer, offering {offer}.",
        "Write a two-sentence reply acknowledging the problem and promising an update tomorrow.",
        "Draft a response to this complaint for a VIP customer. Tone: personal, no templates.",
        "Reply to the customer's last message.",
        "Respond to the customer on behalf of the support team and sign as 'The Support Team'.",
        "Write back to the customer explaining the next steps and offering {offer}.",
        "Prepare a message for the agent to send: empathetic, under 120 words.",
        "Compose a follow-up message asking the customer for the missing information.",
    ],
    "es": [
        "Redacta la respuesta al cliente. Tono cercano, ofrece {offer}.",
        "Escribe un mensaje de seguimiento al cliente con los próximos pasos.",
    ],
    "de": [
        "Schreibe eine Antwort an den Kunden. Entschuldige dich und biete {offer} an.",
        "Verfasse eine Nachricht an den Kunden mit den nächsten Schritten.",
    ],
    "fr": [
        "Rédige la réponse au client. Excuse-toi et propose {offer}.",
        "Écris un message au client avec les prochaines étapes.",
    ],
    "pt": [
        "Escreva a resposta ao cliente. Peça desculpas e ofereça {offer}.",
        "Escreva uma mensagem ao cliente com os próximos passos.",
    ],
    "ja": [
        "お客様への返信文を作成してください。丁寧にお詫びし、{offer}を提案してください。",
        "今後の対応手順をお客様に伝える返信を書いてください。",
    ],
}

REASON: dict[str, list[str]] = {
    "en": [
        "Given the policies below and the customer's situation, decide whether we can refund. "
        "Think through each policy and state which ones apply.",
        "Can we refund this customer given the policies above? Decide.",
        "Determine the correct outcome for this case under our policies. If policies conflict, "
        "explain which takes precedence and why.",
        "Work out how much we owe the customer, if anything, and show the calculation.",
        "The customer disputes the decision. Re-evaluate the case against every policy and "
        "decide approve or deny, with reasons.",
        "Is this customer eligible for compensation? Consider all policies and the timeline.",
    ],
    "es": [
        "Según las políticas anteriores y la situación del cliente, ¿podemos reembolsar? "
        "Analiza cada política y decide."
    ],
    "de": [
        "Prüfe anhand der Richtlinien oben, ob wir erstatten dürfen. Gehe jede Richtlinie "
        "durch und entscheide."
    ],
    "fr": [
        "Au vu des politiques ci-dessus et de la situation du client, pouvons-nous "
        "rembourser ? Analyse chaque politique et décide."
    ],
    "pt": [
        "Com base nas políticas acima e na situação do cliente, podemos reembolsar? Analise "
        "cada política e decida."
    ],
    "ja": [
        "上記の複数の規定とお客様の状況を踏まえて、返金できるかどうか判断してください。"
        "各規定が適用されるか検討し、結論と理由を述べてください。"
    ],
}

LANG_NAMES = {
    "es": "Spanish",
    "de": "German",
    "fr": "French",
    "pt": "Portuguese",
    "ja": "Japanese",
    "it": "Italian",
    "nl": "Dutch",
    "en": "English",
}
