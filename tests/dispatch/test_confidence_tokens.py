"""Content-token scanning and statistics (gateway/confidence/tokens.py)."""

from __future__ import annotations

import math

import pytest

from gateway.confidence.tokens import (
    content_stats,
    json_content_mask,
    percentile,
    probability,
    text_content_mask,
)
from gateway.core.types import TokenLogprob


def toks(*pairs: tuple[str, float]) -> tuple[TokenLogprob, ...]:
    return tuple(TokenLogprob(t, math.log(p)) for t, p in pairs)


def test_json_mask_marks_values_not_keys_or_punctuation() -> None:
    pieces = ['{"', "order", "_id", '":', ' "', "A", "-12", '",', ' "amount', '":', " 42", "}"]
    assert json_content_mask(pieces) == [
        False,  # {"
        False,  # order   (key)
        False,  # _id     (key)
        False,  # ":
        False,  #  "      (opening quote of a value)
        True,  # A
        True,  # -12
        False,  # ",
        False,  #  "amount (key, quote included)
        False,  # ":
        True,  # 42 (number)
        False,  # }
    ]


def test_json_mask_piece_straddling_key_end_and_value_start_counts() -> None:
    # '":"bil' closes the key and opens the value: it carries value characters
    assert json_content_mask(['{"label', '":"bil', "ling", '"}']) == [False, True, True, False]


def test_json_mask_nested_arrays_literals_and_escapes() -> None:
    pieces = ['{"items":[', '"a', '\\"', 'b"', ",", "true", ',{"k', '":', "null", "}]}"]
    assert json_content_mask(pieces) == [
        False,
        True,  # "a   string value inside an array
        True,  # \"  escaped quote stays inside the value
        True,  # b"
        False,
        True,  # true
        False,  # ,{"k   key of the nested object
        False,
        True,  # null
        False,
    ]


def test_json_mask_ignores_text_outside_the_document() -> None:
    pieces = ["```", "json", "\n", '{"a":', "1", "}", "\n```"]
    assert json_content_mask(pieces) == [False, False, False, False, True, False, False]


def test_text_mask_drops_whitespace_and_punctuation_only_pieces() -> None:
    assert text_content_mask(["The", " parcel", " ", ",", " ships", ".", "\n"]) == [
        True,
        True,
        False,
        False,
        True,
        False,
        False,
    ]


def test_low_value_token_inside_json_is_caught() -> None:
    lps = toks(('{"', 0.99), ("order_id", 0.99), ('":"', 0.99), ("A-1", 0.99), ("2345", 0.08))
    lps += toks(('","', 0.99), ("amount", 0.99), ('":', 0.99), ("12", 0.98), ("}", 0.99))
    stats = content_stats(lps, json_mode=True)
    assert stats is not None
    assert stats.count == 3  # "A-1", "2345", "12"
    assert stats.min == pytest.approx(0.08)
    assert stats.lowest_token == "2345"


def test_low_brace_and_key_tokens_are_not_counted() -> None:
    lps = toks(('{"', 0.05), ("order", 0.02), ("_id", 0.1), ('":"', 0.2), ("A-1", 0.97))
    lps += toks(("2345", 0.98), ('"}', 0.03))
    stats = content_stats(lps, json_mode=True)
    assert stats is not None
    assert stats.count == 2
    assert stats.min == pytest.approx(0.97)


def test_json_mode_falls_back_to_text_when_no_document_is_found() -> None:
    stats = content_stats(toks(("bill", 0.4), ("ing", 0.9)), json_mode=True)
    assert stats is not None and stats.count == 2 and stats.min == pytest.approx(0.4)


def test_no_content_tokens_gives_none() -> None:
    assert content_stats(toks(("{", 0.9), ("}", 0.9)), json_mode=True) is None
    assert content_stats((), json_mode=False) is None


def test_min_and_p10_not_mean() -> None:
    # 39 sure tokens and one guessed digit: the mean stays high, min and p10 do not
    lps = toks(*[(f" w{i}", 0.99) for i in range(39)], (" 7", 0.05))
    stats = content_stats(lps, json_mode=False)
    assert stats is not None
    mean = sum(math.exp(t.logprob) for t in lps) / len(lps)
    assert mean > 0.95
    assert stats.min == pytest.approx(0.05)
    # p10 sits at rank 3.9 of 40: one low token moves the minimum, not the 10th percentile
    assert stats.p10 == pytest.approx(0.99)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([0.1], 0.1) == 0.1
    assert percentile([0.0, 1.0], 0.1) == pytest.approx(0.1)
    assert percentile([float(i) for i in range(11)], 0.1) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        percentile([], 0.1)


def test_probability_clamps_odd_logprobs() -> None:
    assert probability(-math.inf) == 0.0
    assert probability(float("nan")) == 0.0
    assert probability(0.3) == 1.0
    assert probability(math.log(0.25)) == pytest.approx(0.25)
