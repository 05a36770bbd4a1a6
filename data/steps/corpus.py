# ruff: noqa: E501, RUF001  (data: natural-language literals, full-width punctuation is correct in ja)
"""Hand-written raw material for generate.py: customer messages, KB snippets, policies, replies.

Placeholders ({order}, {email}, {amount}, {date}, {name}, {plan}, {phone}) are filled per example.
"""

from __future__ import annotations

# (domain, text) per language.
TICKETS: dict[str, list[tuple[str, str]]] = {
    "en": [
        (
            "ecommerce",
            "Hi, my order {order} arrived yesterday but the blender jar is cracked. "
            "I'd like a replacement, not store credit. My email is {email}.",
        ),
        (
            "ecommerce",
            "Where is my package?? Tracking for {order} hasn't moved since {date} and "
            "it was supposed to be here for my daughter's birthday.",
        ),
        (
            "ecommerce",
            "I was charged twice for order {order}, {amount} each time. Please fix this asap.",
        ),
        (
            "ecommerce",
            "Can I change the delivery address on {order}? I moved last week. New address "
            "is 14 Larch Road, Leeds LS6 2QT.",
        ),
        (
            "ecommerce",
            "The shoes I got are a size 9 but I ordered a 10. Order {order}. How do I swap them?",
        ),
        (
            "saas",
            "Our invoice for {date} shows {amount} but we downgraded to the {plan} plan last "
            "month. Account owner: {email}.",
        ),
        (
            "saas",
            "We can't log in to the admin console since this morning, SSO returns 'invalid "
            "audience'. About 40 people are blocked.",
        ),
        ("saas", "How do I add another seat to our workspace without changing the billing cycle?"),
        (
            "saas",
            "Please cancel our subscription at the end of the term and confirm in writing. "
            "Contact: {name}, {email}.",
        ),
        ("saas", "The CSV export has been stuck at 99% for two hours. Workspace id ws-{order}."),
        (
            "telecom",
            "My phone bill jumped to {amount} this month. I didn't roam anywhere. Number {phone}.",
        ),
        (
            "telecom",
            "Internet drops every evening around 8pm for 10 minutes. Router lights blink "
            "orange. Customer number {order}.",
        ),
        ("telecom", "I want to port my number {phone} to another carrier. What's my PAC code?"),
        ("telecom", "I'm moving abroad on {date}. Can I pause my contract instead of cancelling?"),
        (
            "travel",
            "My flight {order} was cancelled and the app rebooked me two days later. I need "
            "to be in Madrid by {date}. What are my options?",
        ),
        (
            "travel",
            "I booked a hotel through you for {date} but the hotel says they have no "
            "reservation under {name}.",
        ),
        ("travel", "Can I add a checked bag to booking {order} after check-in opened?"),
        (
            "travel",
            "The seat I paid extra for ({amount}) was given to someone else. I want that fee back.",
        ),
        (
            "banking",
            "There's a card payment of {amount} at 'XJ*DIGI SERV' on {date} that I don't "
            "recognise. I still have my card.",
        ),
        ("banking", "My transfer to my landlord on {date} still shows pending. Reference {order}."),
        ("banking", "How do I raise my daily ATM withdrawal limit?"),
        (
            "banking",
            "I was charged an overdraft fee of {amount} even though my salary came in the "
            "same day. Please waive it.",
        ),
        (
            "healthcare",
            "I need to move my appointment with Dr. Okafor on {date} to any afternoon "
            "next week. Patient id {order}.",
        ),
        ("healthcare", "Do you take Aetna PPO for physiotherapy sessions?"),
        (
            "healthcare",
            "I got a bill for {amount} for a visit that my insurance should have covered. "
            "Claim {order}.",
        ),
        (
            "healthcare",
            "Can my daughter (14) book her own appointment online or do I need to do it?",
        ),
        (
            "gaming",
            "I bought 2,400 gems ({amount}) but they never showed up in my account. "
            "Player id {order}.",
        ),
        (
            "gaming",
            "My account got banned for 'cheating' but I only play on console with a "
            "controller. Appeal please.",
        ),
        ("gaming", "The game crashes on launch after today's patch, PS5, error CE-108255-1."),
        ("gaming", "How do I link my Steam account to my existing profile {email}?"),
        (
            "insurance",
            "A tree fell on my car during the storm on {date}. Policy {order}. How do I "
            "start a claim?",
        ),
        ("insurance", "Why did my premium go up by {amount} at renewal? No claims this year."),
        (
            "food",
            "Order {order} arrived 50 minutes late and the fries were cold. Driver also "
            "forgot the drinks.",
        ),
        ("food", "I have a nut allergy. Does the pad thai at Lotus Kitchen contain peanuts?"),
        (
            "utilities",
            "Meter reading submitted on {date} was 48213 but the bill uses an estimate "
            "of 49900. Account {order}.",
        ),
        ("utilities", "Is there a planned power outage in postcode M14 this week?"),
        (
            "logistics",
            "Shipment {order} shows 'delivered' but nothing is at our warehouse dock. "
            "Signed by 'J'. We need a trace.",
        ),
        ("logistics", "What is the maximum pallet height you accept for next-day freight?"),
        (
            "hotel",
            "I need an invoice with our company VAT number for my stay on {date}, booking {order}.",
        ),
        ("hotel", "Is late checkout at 2pm possible on Sunday? Room booked under {name}."),
    ],
    "es": [
        (
            "ecommerce",
            "Hola, mi pedido {order} llegó con la pantalla rota. Quiero que me lo "
            "cambien, no un reembolso. Mi correo es {email}.",
        ),
        (
            "ecommerce",
            "Me cobraron dos veces el pedido {order} ({amount}). ¿Me pueden devolver uno "
            "de los cargos?",
        ),
        (
            "telecom",
            "Desde el {date} no tengo internet en casa. El router parpadea en rojo. "
            "Número de cliente {order}.",
        ),
        ("telecom", "Mi factura de este mes es de {amount}, el doble de lo normal. No he viajado."),
        (
            "travel",
            "Cancelaron mi vuelo {order} y necesito llegar a Lisboa antes del {date}. "
            "¿Qué opciones tengo?",
        ),
        ("banking", "Hay un cargo de {amount} en mi tarjeta que no reconozco, del {date}."),
        ("saas", "Queremos cancelar la suscripción al final del periodo. Cuenta {email}."),
        (
            "healthcare",
            "Necesito cambiar mi cita del {date} con la doctora Ruiz a la semana que viene.",
        ),
        ("gaming", "Compré gemas por {amount} y no aparecen en mi cuenta. ID de jugador {order}."),
        ("food", "El pedido {order} llegó frío y faltaba la bebida. Muy mala experiencia."),
        ("insurance", "Tuve un accidente leve el {date}. Póliza {order}. ¿Cómo abro un siniestro?"),
        (
            "hotel",
            "¿Es posible hacer el check-out a las 14:00 el domingo? Reserva a nombre de {name}.",
        ),
    ],
    "de": [
        (
            "ecommerce",
            "Hallo, meine Bestellung {order} ist beschädigt angekommen. Ich möchte "
            "einen Ersatz. Meine E-Mail: {email}.",
        ),
        (
            "ecommerce",
            "Wo bleibt mein Paket? Die Sendungsverfolgung für {order} zeigt seit dem "
            "{date} keine Bewegung.",
        ),
        (
            "telecom",
            "Mein Internet bricht jeden Abend ab. Kundennummer {order}. Bitte um schnelle Hilfe.",
        ),
        ("telecom", "Meine Rechnung ist diesen Monat {amount}, sonst zahle ich die Hälfte."),
        (
            "banking",
            "Auf meinem Konto ist eine Abbuchung über {amount} vom {date}, die ich nicht kenne.",
        ),
        ("banking", "Wie erhöhe ich mein Tageslimit für Überweisungen?"),
        ("saas", "Wir möchten zum {plan}-Tarif wechseln, ohne den Abrechnungszeitraum zu ändern."),
        ("travel", "Mein Flug {order} wurde gestrichen. Ich muss bis {date} in Wien sein."),
        (
            "healthcare",
            "Ich möchte meinen Termin am {date} bei Dr. Weber auf nächste Woche verschieben.",
        ),
        (
            "gaming",
            "Mein Konto wurde gesperrt, obwohl ich nicht geschummelt habe. Spieler-ID {order}.",
        ),
        (
            "utilities",
            "Der Zählerstand vom {date} war 48213, die Rechnung nutzt aber eine Schätzung.",
        ),
        ("insurance", "Warum ist meine Prämie bei der Verlängerung um {amount} gestiegen?"),
    ],
    "fr": [
        (
            "ecommerce",
            "Bonjour, ma commande {order} est arrivée abîmée. Je voudrais un échange. "
            "Mon e-mail : {email}.",
        ),
        (
            "ecommerce",
            "J'ai été débité deux fois pour la commande {order} ({amount}). Merci de "
            "rembourser le doublon.",
        ),
        (
            "telecom",
            "Ma connexion internet coupe tous les soirs depuis le {date}. Numéro client {order}.",
        ),
        ("telecom", "Je souhaite résilier mon abonnement mobile, numéro {phone}."),
        ("travel", "Mon vol {order} a été annulé et je dois être à Rome avant le {date}."),
        ("banking", "Je ne reconnais pas un paiement de {amount} sur ma carte le {date}."),
        (
            "saas",
            "Notre facture du mois montre {amount} alors que nous sommes passés au plan {plan}.",
        ),
        ("healthcare", "Je voudrais déplacer mon rendez-vous du {date} avec le Dr Martin."),
        ("gaming", "J'ai acheté des gemmes pour {amount} mais elles ne sont pas sur mon compte."),
        ("food", "La commande {order} est arrivée avec une heure de retard et froide."),
        (
            "hotel",
            "Pouvez-vous m'envoyer une facture avec notre numéro de TVA pour le séjour {order} ?",
        ),
        (
            "insurance",
            "Un arbre est tombé sur ma voiture le {date}. Contrat {order}. Comment déclarer ?",
        ),
    ],
    "pt": [
        (
            "ecommerce",
            "Olá, meu pedido {order} chegou com defeito. Quero a troca, não o reembolso. "
            "Meu e-mail é {email}.",
        ),
        ("ecommerce", "Fui cobrado duas vezes pelo pedido {order} ({amount}). Podem estornar?"),
        ("telecom", "Minha internet cai toda noite desde {date}. Número do cliente {order}."),
        ("telecom", "A minha conta deste mês veio {amount}, muito acima do normal."),
        ("travel", "Meu voo {order} foi cancelado e preciso estar em Madri até {date}."),
        (
            "banking",
            "Tem uma compra de {amount} no meu cartão que eu não reconheço, do dia {date}.",
        ),
        ("saas", "Queremos cancelar a assinatura no fim do período. Conta {email}."),
        ("healthcare", "Preciso remarcar minha consulta do dia {date} com a Dra. Souza."),
        ("gaming", "Comprei gemas por {amount} e elas não apareceram na minha conta."),
        ("food", "O pedido {order} chegou frio e faltou o refrigerante."),
        ("insurance", "Bati o carro de leve no dia {date}. Apólice {order}. Como abro o sinistro?"),
        ("utilities", "A leitura do medidor em {date} foi 48213, mas a conta usou uma estimativa."),
    ],
    "ja": [
        (
            "ecommerce",
            "注文番号{order}の商品が破損して届きました。返金ではなく交換を希望します。"
            "メールアドレスは{email}です。",
        ),
        ("ecommerce", "注文{order}が二重に請求されています（{amount}）。一件を返金してください。"),
        ("telecom", "{date}から毎晩インターネットが切れます。お客様番号は{order}です。"),
        ("telecom", "今月の請求額が{amount}で、いつもの倍です。海外には行っていません。"),
        ("travel", "フライト{order}が欠航になりました。{date}までに大阪に着く必要があります。"),
        ("banking", "{date}に覚えのない{amount}のカード利用があります。"),
        ("saas", "契約期間の終了時にサブスクリプションを解約したいです。アカウントは{email}です。"),
        ("healthcare", "{date}の田中先生の予約を来週の午後に変更したいです。"),
        ("gaming", "{amount}分のジェムを購入しましたが、アカウントに反映されていません。"),
        ("food", "注文{order}が50分遅れて届き、料理が冷めていました。"),
        (
            "insurance",
            "{date}の台風で車に木が倒れてきました。保険証券番号{order}。請求方法を教えてください。",
        ),
        (
            "hotel",
            "{date}の宿泊について、会社名入りの領収書を発行してもらえますか。予約番号{order}。",
        ),
    ],
    "it": [
        (
            "ecommerce",
            "Buongiorno, il mio ordine {order} è arrivato danneggiato. Vorrei una "
            "sostituzione. Email {email}.",
        ),
        ("telecom", "La mia connessione cade ogni sera dal {date}. Codice cliente {order}."),
        ("banking", "C'è un addebito di {amount} sulla mia carta che non riconosco."),
    ],
    "nl": [
        (
            "ecommerce",
            "Hallo, mijn bestelling {order} is beschadigd aangekomen. Ik wil graag een "
            "vervanging. Mijn e-mail is {email}.",
        ),
        ("telecom", "Mijn internet valt elke avond uit sinds {date}. Klantnummer {order}."),
        ("banking", "Er staat een betaling van {amount} op mijn rekening die ik niet herken."),
    ],
}

# Knowledge-base snippets per domain (English; the lookup steps quote them verbatim).
KB: dict[str, list[str]] = {
    "ecommerce": [
        "[KB-101] Returns: items can be returned within 30 days of delivery in original "
        "packaging. Damaged-on-arrival items are replaced free of charge; report within 7 days.",
        "[KB-102] Address changes are possible until the order status is 'packed'. After that, "
        "the customer must redirect the parcel with the carrier.",
        "[KB-103] Duplicate charges: the second authorisation drops off automatically within 3–5 "
        "business days; captured duplicates are refunded by the payments team within 48 hours.",
        "[KB-104] Size exchanges are free once per order; start them from Orders > Exchange.",
    ],
    "saas": [
        "[KB-201] Seats can be added at any time from Admin > Billing; they are prorated to the "
        "current billing cycle and do not change the renewal date.",
        "[KB-202] Downgrades take effect at the next renewal. Invoices already issued are not "
        "changed, but a credit note is issued for unused seats on annual plans.",
        "[KB-203] SSO 'invalid audience' errors mean the Entity ID in the IdP does not match "
        "https://app.example.com/saml/metadata.",
        "[KB-204] Cancellations are confirmed by e-mail to the account owner within 1 business day.",
    ],
    "telecom": [
        "[KB-301] PAC codes are sent by SMS within 1 minute when the customer texts PAC to 65075.",
        "[KB-302] Contracts can be paused for up to 6 months for a fee of 5 per month; the "
        "minimum term is extended by the paused period.",
        "[KB-303] Orange blinking router lights indicate a line sync problem; a line test can be "
        "run from My Account > Broadband > Test line.",
        "[KB-304] Roaming charges appear on the bill under 'Usage abroad'; in-EU roaming is free "
        "on all plans since 2022.",
    ],
    "travel": [
        "[KB-401] For cancelled flights the customer may choose a full refund, rebooking on the "
        "next available flight at no cost, or rerouting with a partner airline.",
        "[KB-402] Checked bags can be added up to 3 hours before departure in Manage Booking.",
        "[KB-403] Paid seat fees are refunded automatically when the airline changes the seat.",
    ],
    "banking": [
        "[KB-501] Daily ATM limits can be raised up to 1,000 in the app under Card > Limits.",
        "[KB-502] Pending transfers normally settle within 1 business day; SEPA transfers made "
        "after 16:00 are processed the next business day.",
        "[KB-503] Unrecognised card payments: freeze the card in the app, then open a dispute "
        "under Transactions > Report a problem.",
    ],
    "healthcare": [
        "[KB-601] Appointments can be rescheduled online up to 24 hours before the start time.",
        "[KB-602] We accept Aetna PPO, Blue Cross PPO and Cigna for physiotherapy; HMO plans need "
        "a referral.",
        "[KB-603] Patients under 16 need a parent or guardian to book appointments.",
    ],
    "gaming": [
        "[KB-701] Gem purchases can take up to 2 hours to appear; after that, restore purchases "
        "from Settings > Store.",
        "[KB-702] Ban appeals are submitted through the appeal form; decisions take 5 business days.",
        "[KB-703] Steam accounts are linked from Profile > Linked accounts > Steam.",
    ],
    "insurance": [
        "[KB-801] Storm damage claims are opened online or by phone within 30 days; photos of the "
        "damage are required.",
        "[KB-802] Premiums are recalculated at renewal from regional claim costs, not only the "
        "customer's own claim history.",
    ],
    "food": [
        "[KB-901] Late deliveries over 30 minutes get a 20% voucher automatically.",
        "[KB-902] Allergen information is listed per dish under 'Ingredients'; Lotus Kitchen's "
        "pad thai contains peanuts.",
    ],
    "utilities": [
        "[KB-1001] Bills use an estimate when the reading arrives after the billing date; "
        "corrected bills are issued within 5 days of a new reading.",
        "[KB-1002] Planned outages are listed at status.example-power.com by postcode.",
    ],
    "logistics": [
        "[KB-1101] Next-day freight accepts pallets up to 1.8 m high and 1,000 kg.",
        "[KB-1102] Delivery traces are opened with the POD reference and answered within 48 hours.",
    ],
    "hotel": [
        "[KB-1201] Late checkout until 14:00 costs 30 and depends on availability on the day.",
        "[KB-1202] Company invoices with a VAT number can be requested up to 90 days after the stay.",
    ],
}

# Company policies for reasoning steps, per domain.
POLICIES: dict[str, list[str]] = {
    "ecommerce": [
        "Policy R1: Refunds are allowed within 30 days of delivery for unused items.",
        "Policy R2: Items marked 'final sale' cannot be refunded, only exchanged for store credit.",
        "Policy R3: Damaged-on-arrival claims require a photo within 7 days of delivery.",
        "Policy R4: Customers with more than 3 refunds in 90 days need manager approval.",
        "Policy R5: Shipping fees are refunded only when the item was defective or wrong.",
    ],
    "saas": [
        "Policy B1: Annual plans are refundable pro rata within the first 30 days only.",
        "Policy B2: Monthly plans are never refunded, but a downgrade credit can be applied.",
        "Policy B3: Outages over 4 hours in a month earn a 10% SLA credit on Business plans.",
        "Policy B4: Credits cannot exceed the invoice amount of the affected month.",
    ],
    "telecom": [
        "Policy T1: Early termination costs the remaining monthly fees up to a cap of 150.",
        "Policy T2: Customers moving abroad may terminate without fee with proof of address.",
        "Policy T3: Bill shock over 50 above average can be credited once per 12 months.",
    ],
    "travel": [
        "Policy A1: Cancellations by the airline entitle a full refund including paid extras.",
        "Policy A2: Compensation applies for delays over 3 hours unless caused by extraordinary "
        "circumstances (weather, strikes outside the airline).",
        "Policy A3: Rebooked passengers who decline the new flight get a refund, not compensation.",
    ],
    "banking": [
        "Policy K1: Overdraft fees are waived once per year if income arrives the same day.",
        "Policy K2: Disputes over 500 require a card block and a signed declaration.",
        "Policy K3: Chargebacks are not possible for payments authorised with 3-D Secure unless "
        "the customer reports device theft.",
    ],
    "healthcare": [
        "Policy H1: Late cancellations (under 24 hours) are charged 40 unless for illness.",
        "Policy H2: Insurance denials are re-submitted once with the corrected code before the "
        "patient is billed.",
    ],
    "gaming": [
        "Policy G1: In-game purchases are refundable within 14 days if no currency was spent.",
        "Policy G2: Accounts banned by the anti-cheat system are reviewed manually on appeal; "
        "bans with hardware-level evidence are final.",
        "Policy G3: Refund abuse (over 2 refunds in 6 months) blocks further refunds.",
    ],
    "insurance": [
        "Policy I1: Storm damage is covered under comprehensive policies only.",
        "Policy I2: The excess is 250 per claim; windscreen claims have no excess.",
    ],
    "food": [
        "Policy F1: Late deliveries (over 30 minutes) earn a 20% voucher, not a cash refund.",
        "Policy F2: Missing items are refunded in cash to the original payment method.",
        "Policy F3: Customers with 3 complaints in 30 days are reviewed before any refund.",
    ],
    "utilities": [
        "Policy U1: Estimated bills are corrected when the customer supplies a dated meter photo.",
        "Policy U2: Back-billing is limited to the last 12 months of consumption.",
    ],
    "logistics": [
        "Policy L1: Lost freight is reimbursed up to 20 per kg unless declared value insurance "
        "was bought.",
        "Policy L2: A trace must be completed before a loss claim can be paid.",
    ],
    "hotel": [
        "Policy O1: Non-refundable rates can be changed for a fee of 25 up to 48 hours before arrival.",
        "Policy O2: Overbooked guests are moved to an equal or better hotel at our cost.",
    ],
}

# Agent reply drafts that format steps rework (language, text).
REPLIES: list[tuple[str, str]] = [
    (
        "en",
        "Hi {name}, thanks for reaching out. I've checked order {order} and the replacement "
        "ships today, you'll get tracking by email. The cracked item doesn't need to be returned. "
        "Sorry again for the trouble!",
    ),
    (
        "en",
        "hello {name} i have refunded the duplicate charge of {amount} it should be back on "
        "you card in 3-5 business days. let me know if anything else comes up",
    ),
    (
        "en",
        "Dear {name}, your appointment has been moved to {date} at 14:30 with Dr. Okafor. "
        "Please arrive 10 minutes early and bring your insurance card.",
    ),
    (
        "en",
        "We have credited {amount} to your account for the outage on {date}. The credit "
        "will appear on your next invoice. Your plan and renewal date stay the same.",
    ),
    (
        "en",
        "Your flight {order} has been rebooked to {date} 07:40, seat 14C. Your checked bag "
        "carries over. If this does not work you can request a full refund instead.",
    ),
    (
        "es",
        "Hola {name}, hemos enviado un reemplazo para el pedido {order}. Recibirás el número "
        "de seguimiento por correo. No hace falta devolver el producto dañado.",
    ),
    (
        "de",
        "Hallo {name}, wir haben die doppelte Abbuchung von {amount} erstattet. Das Geld ist "
        "in 3–5 Werktagen wieder auf Ihrem Konto.",
    ),
    (
        "fr",
        "Bonjour {name}, votre rendez-vous est déplacé au {date} à 14h30. Merci d'arriver dix "
        "minutes en avance.",
    ),
    (
        "pt",
        "Olá {name}, o estorno de {amount} foi feito e aparece na sua fatura em até 5 dias úteis.",
    ),
    (
        "ja",
        "{name}様、お問い合わせありがとうございます。注文{order}の交換品を本日発送しました。"
        "追跡番号はメールでお知らせします。",
    ),
]

# Agent lines used to build conversation transcripts (English; summaries and drafts reuse them).
AGENT_LINES: list[str] = [
    "Thanks for contacting us, I'm sorry about this. Let me check your account.",
    "I can see the order in our system. Could you confirm the email on the account?",
    "Thanks. I've opened a case with our logistics team and marked it urgent.",
    "I've applied a credit of {amount} to your account as a goodwill gesture.",
    "Our technical team is looking into it; I'll update you within 24 hours.",
    "I understand the frustration. Can you send a photo of the damaged item?",
    "I checked with the billing team: the second charge was an authorisation and will drop off.",
    "I've reset the line from our side; please restart the router and tell me if it holds.",
    "Unfortunately the fare is non-refundable, but I can offer a free date change.",
    "I've escalated this to a supervisor who will call you tomorrow before noon.",
]
CUSTOMER_LINES: list[str] = [
    "Yes, the email is {email}.",
    "It still isn't working. This is the third time I'm contacting you.",
    "Okay, thanks. When will I hear back?",
    "I attached the photo now.",
    "That's not acceptable, I want a refund, not a credit.",
    "I restarted it and it dropped again after 20 minutes.",
    "Fine, but please make sure this doesn't happen again.",
    "Can you at least waive the fee for this month?",
    "I've been a customer for 8 years and never had problems like this.",
    "Thanks, that helps. One more question: will my renewal price change?",
]

LOG_SNIPPETS: list[str] = [
    "2024-05-02T20:01:13Z WARN  dsl0: SNR margin 3.1dB below threshold\n"
    "2024-05-02T20:01:44Z ERROR dsl0: link down (LOS)\n"
    "2024-05-02T20:11:02Z INFO  dsl0: link up 38.2/9.8 Mbps",
    "2024-05-03 09:12:55,101 ERROR auth.saml: Audience mismatch: expected "
    "https://app.example.com/saml/metadata got https://app.example.com\n"
    "2024-05-03 09:12:55,102 WARN  auth: 41 failed logins in 5 min for tenant acme",
    'Traceback (most recent call last):\n  File "export.py", line 88, in run\n'
    "    writer.flush()\nTimeoutError: upstream storage did not respond in 30s",
    "[2024-06-11 18:22:07] payment_gateway status=declined code=05 amount=49.99 retry=1\n"
    "[2024-06-11 18:22:09] payment_gateway status=approved amount=49.99 auth=8F2K1\n"
    "[2024-06-11 18:22:10] payment_gateway status=approved amount=49.99 auth=8F2K9",
]
