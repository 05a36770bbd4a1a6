"""Cheap language guess for a support message: script ranges for ja/zh/ko, stop words otherwise.

Looks at a bounded prefix only, so the cost does not grow with the prompt.
"""

from __future__ import annotations

import re
from collections import Counter

_SAMPLE_CHARS = 1500
_WORD_CHARS = 400  # stop words are dense: a few sentences decide

_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_HAN = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"[^\W\d_]+")

_STOP_WORDS: dict[str, str] = {
    "en": (
        "the and is are to of with this that you your please my was have it not be on from we "
        "i can what would could should will our for"
    ),
    "es": (
        "el la los las que y en un una por con para mi no es se del al pero muy está gracias "
        "hola pedido usted nuestro cuenta cuál"
    ),
    "pt": (
        "o os as que e em um uma por com para meu minha não é se do da dos das mas muito está "
        "obrigado obrigada olá você ao foi pedido conta"
    ),
    "fr": (
        "le la les des du et en un une pour avec mon ma mes ne pas est que qui je vous nous au "
        "aux sur bonjour merci commande votre"
    ),
    "de": (
        "der die das und ist nicht ich ein eine mit für zu den dem von auf bitte sie wir mein "
        "meine es auch danke hallo bestellung ihre"
    ),
    "it": (
        "il lo gli di che è un una per con non mi sono del della ma grazie buongiorno ordine "
        "vostro questo"
    ),
    "nl": (
        "de het een en van ik niet is dat met voor op mijn wij u bedankt graag alstublieft "
        "bestelling uw"
    ),
}
# Words shared by several languages vote for each; ties go to the earlier language.
_SETS: dict[str, frozenset[str]] = {lang: frozenset(w.split()) for lang, w in _STOP_WORDS.items()}
_ORDER = tuple(_STOP_WORDS)


def detect_language(text: str) -> str:
    """ISO 639-1 guess ("en" when nothing votes). Reads a bounded prefix only."""
    sample = text[:_SAMPLE_CHARS]
    if not sample.isascii():  # else there is no kana, hangul or han to look for
        if _KANA.search(sample):
            return "ja"
        if _HANGUL.search(sample):
            return "ko"
        if _HAN.search(sample):
            return "zh"
    words = Counter(_WORD.findall(sample[:_WORD_CHARS].lower()))
    present = words.keys()
    best, best_votes = "en", 0
    for lang in _ORDER:
        votes = sum(words[w] for w in _SETS[lang] & present)
        if votes > best_votes:
            best, best_votes = lang, votes
    return best
