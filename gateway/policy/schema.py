"""The policy JSON Schema shipped as policies/policy.schema.json, for editor autocompletion.

Generated from the pydantic models (`gateway.policy.models.json_schema`), so it cannot say
anything the loader does not enforce. Policies write `${VAR}` / `${VAR:-default}` in scalar
values and the loader substitutes them before validation; the schema accepts such a reference
wherever a scalar goes, so an editor does not flag `engine: ${STEPGATE_DLLM_ENGINE:-vllm}`.

    python -m gateway.policy.schema > policies/policy.schema.json
    python -m gateway.policy.schema --check policies/policy.schema.json   # exit 1 when stale

`--check` and the tests compare meaning (`same_meaning`), not bytes: the file generated with
one pydantic release stays valid under another that renders the same models differently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from gateway.policy.models import json_schema

SHIPPED = Path(__file__).resolve().parents[2] / "policies" / "policy.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Same syntax the loader accepts (gateway.policy.loader._VAR and _VAR_NAME).
VAR_REFERENCE = r"^[^$]*(\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}[^$]*)+$"
_SCALAR_TYPES = {"string", "number", "integer", "boolean"}


def policy_schema() -> dict[str, Any]:
    """The editor schema: the models' schema, with `${VAR}` references allowed in scalars."""
    schema = _allow_var_references(json_schema())
    return {
        "$schema": DIALECT,
        "$id": "https://stepgate.dev/schemas/policy-v1.json",
        "title": "Stepgate routing policy (version 1)",
        "description": (
            "Backends, baseline, ordered routes (first match wins), aliases and retries. "
            "Validate with `stepgate policy check PATH`; this schema is generated from the "
            "pydantic models by `python -m gateway.policy.schema`."
        ),
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def render() -> str:
    """The schema as committed: 2-space indented JSON, key order as generated, final newline."""
    return json.dumps(policy_schema(), indent=2, ensure_ascii=False) + "\n"


def meaning(schema: Any) -> Any:
    """A schema as far as it constrains a policy, for comparing two renderings: what pydantic
    versions render differently for the same model is left out (the `pattern` of a Decimal's
    string form, which pydantic 2.14 stopped emitting; key order)."""
    if isinstance(schema, list):
        return [meaning(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    options = schema.get("anyOf")
    decimal = isinstance(options, list) and any(
        isinstance(o, dict) and o.get("type") == "number" for o in options
    )
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "anyOf" and decimal:
            value = [
                {k: v for k, v in o.items() if k != "pattern" or o.get("type") != "string"}
                if isinstance(o, dict) and o.get("pattern") != VAR_REFERENCE
                else o
                for o in value
            ]
        out[key] = meaning(value)
    return out


def same_meaning(text: str) -> bool:
    """Whether a committed schema file says what the models say now."""
    try:
        committed = json.loads(text)
    except json.JSONDecodeError:
        return False
    return bool(meaning(committed) == meaning(policy_schema()))


def _allow_var_references(node: Any) -> Any:
    """Add a `${VAR}` string alternative to every scalar schema (not to `const` tags)."""
    if isinstance(node, list):
        return [_allow_var_references(item) for item in node]
    if not isinstance(node, dict):
        return node
    var = {"type": "string", "pattern": VAR_REFERENCE}
    if _is_scalar(node):
        if _takes_any_string(node):
            return node
        if "anyOf" in node:
            return {**node, "anyOf": [*node["anyOf"], var]}
        keep = {k: node[k] for k in ("title", "description", "default") if k in node}
        inner = {k: v for k, v in node.items() if k not in keep}
        return {**keep, "anyOf": [inner, var]}
    return {key: _walk_child(key, value) for key, value in node.items()}


def _takes_any_string(node: dict[str, Any]) -> bool:
    options = node.get("anyOf", [node])
    return any(
        opt.get("type") == "string" and not {"pattern", "enum", "format", "maxLength"} & set(opt)
        for opt in options
    )


def _walk_child(key: str, value: Any) -> Any:
    if key in ("properties", "$defs"):
        return {name: _allow_var_references(sub) for name, sub in value.items()}
    if key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
        return _allow_var_references(value)
    return value


def _is_scalar(node: dict[str, Any]) -> bool:
    """A string/number/boolean/enum schema, or an anyOf of those (null allowed beside them)."""
    if "const" in node or "$ref" in node or "properties" in node:
        return False
    if node.get("type") in _SCALAR_TYPES or "enum" in node:
        return True
    options = node.get("anyOf")
    if not isinstance(options, list) or not options:
        return False
    non_null = [opt for opt in options if opt.get("type") != "null"]
    return bool(non_null) and all(_is_scalar(opt) for opt in non_null)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        path = Path(argv[1]) if len(argv) > 1 else SHIPPED
        if not path.exists() or not same_meaning(path.read_text(encoding="utf-8")):
            sys.stderr.write(
                f"{path} is stale: regenerate it with `python -m gateway.policy.schema > {path}`\n"
            )
            return 1
        return 0
    if argv:
        sys.stderr.write("usage: python -m gateway.policy.schema [--check [PATH]]\n")
        return 2
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
