"""JSON Schema validators built from a caller's schema that cannot reach out or hang.

jsonschema's defaults would fetch a remote `$ref` with `urlopen` (synchronously, no timeout)
and run `pattern`s with `re`, whose backtracking a schema like `^(a+)+$` turns into seconds per
string. Here a validator resolves only references inside the schema itself (an empty
`referencing` registry: nothing is ever retrieved), and `pattern`, `patternProperties` and
`additionalProperties` match with the `regex` engine under a per-match time cap. A schema that
still cannot be checked raises `Uncheckable`; the verdict reports it, never a stall.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import orjson
import regex

# No stubs ship with jsonschema (types-jsonschema is not a dev dependency yet).
from jsonschema import SchemaError, ValidationError  # type: ignore[import-untyped, unused-ignore]
from jsonschema.protocols import Validator  # type: ignore[import-untyped, unused-ignore]
from jsonschema.validators import (  # type: ignore[import-untyped, unused-ignore]
    Draft3Validator,
    extend,
    validator_for,
)
from referencing import Registry
from referencing.exceptions import Unresolvable

from gateway.core import params

# Longest one regex match may run; a caller's pattern that needs more is not checked.
MATCH_TIMEOUT_S = 0.02
_NO_RETRIEVAL: Registry[Any] = Registry()  # resolves nothing it was not given: no fetches


class Uncheckable(Exception):
    """The answer cannot be checked against this schema (slow pattern, bad pattern, ref)."""


@functools.lru_cache(maxsize=1024)
def _pattern(source: str) -> regex.Pattern[str]:
    try:
        return regex.compile(source)
    except (regex.error, TypeError) as exc:
        raise Uncheckable(f"pattern {source[:60]!r} does not compile: {exc}") from exc


def search(source: str, text: str) -> bool:
    """`re.search(source, text)`, bounded in time: raises Uncheckable past MATCH_TIMEOUT_S."""
    try:
        return _pattern(source).search(text, timeout=MATCH_TIMEOUT_S, concurrent=True) is not None
    except TimeoutError as exc:
        raise Uncheckable(
            f"pattern {source[:60]!r} took longer than {MATCH_TIMEOUT_S * 1000:.0f} ms to match"
        ) from exc


def _pattern_kw(validator: Any, patrn: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties_kw(validator: Any, props: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for source, subschema in props.items():
        for key, value in instance.items():
            if search(source, key):
                yield from validator.descend(value, subschema, path=key, schema_path=source)


def _additional_properties_kw(
    validator: Any, extra: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = sorted(
        (key for key in instance if key not in known and not any(search(p, key) for p in patterns)),
        key=str,
    )
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        yield ValidationError(f"Additional properties are not allowed ({extras!r} unexpected)")


_SAFE_KEYWORDS = {
    "pattern": _pattern_kw,
    "patternProperties": _pattern_properties_kw,
    "additionalProperties": _additional_properties_kw,
}


@functools.lru_cache(maxsize=16)
def _safe_class(cls: Any) -> Any:
    return extend(cls, _SAFE_KEYWORDS)


@functools.lru_cache(maxsize=512)
def _compiled(schema_key: bytes) -> Validator | str:
    """A validator for a serialized schema, or the reason the schema itself is unusable.

    Building and checking a validator costs far more than validating a short answer, and
    callers send the same few schemas over and over, so compiled validators are memoized.
    """
    schema = orjson.loads(schema_key)
    refs = params.remote_refs(schema)
    if refs:
        return f"the request's schema refers outside itself ({refs[0][:80]!r}); not checked"
    cls = validator_for(schema)
    if cls is Draft3Validator:
        return "draft-03 schemas are not checked; declare a newer $schema"
    if _uses_unevaluated_patterns(schema):
        return "unevaluatedProperties with patternProperties is not checked"
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        return f"the request's schema is invalid ({exc.message}); answer not checked against it"
    except re.error as exc:  # a `format: regex` check of a pattern in the schema
        return f"the request's schema has a bad pattern ({exc}); answer not checked against it"
    return _safe_class(cls)(schema, registry=_NO_RETRIEVAL)  # type: ignore[no-any-return, unused-ignore]


def _uses_unevaluated_patterns(schema: Any) -> bool:
    # jsonschema evaluates patternProperties for unevaluatedProperties with `re`, unbounded.
    text = orjson.dumps(schema)
    return b'"unevaluatedProperties"' in text and b'"patternProperties"' in text


def validator(schema: dict[str, Any]) -> Validator | str:
    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        return f"the request's schema cannot be serialized ({exc}); answer not checked against it"
    return _compiled(key)


def errors(validator: Validator, value: Any, limit: int) -> list[Any]:
    """Up to `limit` validation errors; raises Uncheckable for what cannot be evaluated."""
    out: list[Any] = []
    try:
        for error in validator.iter_errors(value):
            out.append(error)
            if len(out) >= limit:
                break
    except Unresolvable as exc:
        raise Uncheckable(f"the schema's reference {exc} cannot be resolved") from exc
    except RecursionError as exc:
        raise Uncheckable("the schema refers to itself without end") from exc
    return out
