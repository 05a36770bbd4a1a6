"""Load a policy YAML file into a frozen `Policy`, or report every problem as PATH:LINE:COL.

Steps: parse YAML keeping node positions -> substitute `${VAR}` / `${VAR:-default}` in string
values -> validate shape (pydantic) -> cross-check references. Problems from every step are
collected and reported together, each at the position of the offending node.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from connectors.families import BY_TYPE, FAMILIES
from gateway.core.redact import redact
from gateway.policy.models import Policy, cross_check

Loc = tuple[str | int, ...]

_VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class PolicyLoadError(Exception):
    """The policy file is invalid; `problems` holds every problem found."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_policy(path: str | Path, env: Mapping[str, str] | None = None) -> Policy:
    """Read, substitute, validate and cross-check `path`. Raises PolicyLoadError."""
    path_s = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyLoadError(
            [PolicyProblem(path_s, 1, 1, f"cannot read policy file: {exc.strerror}")]
        ) from exc
    return parse_policy(text, path=path_s, env=os.environ if env is None else env)


def parse_policy(text: str, *, path: str, env: Mapping[str, str]) -> Policy:
    doc = _Document(path)
    data = doc.parse(text, env)
    if doc.problems:
        raise PolicyLoadError(doc.problems)
    if not isinstance(data, dict):
        raise PolicyLoadError([PolicyProblem(path, 1, 1, "a policy must be a YAML mapping")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = [
            doc.problem(
                _error_loc(data, err), _message(err, data), at_key=err["type"] == "extra_forbidden"
            )
            for err in exc.errors()
        ]
        raise PolicyLoadError(sorted(problems, key=lambda p: (p.line, p.col))) from exc
    problems = [doc.problem(loc, msg) for loc, msg in cross_check(policy)]
    if problems:
        raise PolicyLoadError(sorted(problems, key=lambda p: (p.line, p.col)))
    return policy


class _Document:
    """Turns a YAML node tree into plain data, remembering where each node starts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.marks: dict[Loc, tuple[int, int]] = {}
        self.key_marks: dict[Loc, tuple[int, int]] = {}
        self.problems: list[PolicyProblem] = []

    def parse(self, text: str, env: Mapping[str, str]) -> Any:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            self.problems.append(
                PolicyProblem(self.path, line, col, f"YAML syntax error: {exc.problem}")
            )
            return None
        if node is None:
            self.problems.append(PolicyProblem(self.path, 1, 1, "the policy file is empty"))
            return None
        return self._convert(node, (), env)

    def problem(self, loc: Loc, message: str, *, at_key: bool = False) -> PolicyProblem:
        if at_key and loc in self.key_marks:
            line, col = self.key_marks[loc]
        else:
            line, col = self._position(loc)
        return PolicyProblem(self.path, line, col, message)

    def _position(self, loc: Loc) -> tuple[int, int]:
        """The value's own position for scalars and flow collections, else its key's."""
        for cut in range(len(loc), -1, -1):
            prefix = loc[:cut]
            if prefix in self.marks:
                return self.marks[prefix]
            if prefix in self.key_marks:
                return self.key_marks[prefix]
        return (1, 1)

    def _convert(
        self, node: yaml.Node, loc: Loc, env: Mapping[str, str], *, item: bool = False
    ) -> Any:
        block = isinstance(node, yaml.CollectionNode) and not node.flow_style
        if not block or item or not loc:
            self.marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = yaml.SafeLoader(" ").construct_object(key_node)  # plain scalar key
                child: Loc = (*loc, key)
                self.key_marks[child] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                if key in out:
                    line, col = self.key_marks[child]
                    self.problems.append(
                        PolicyProblem(
                            self.path, line, col, f"duplicate key {key!r}; keep only one of them"
                        )
                    )
                out[key] = self._convert(value_node, child, env)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [
                self._convert(child, (*loc, i), env, item=True)
                for i, child in enumerate(node.value)
            ]
        value = yaml.SafeLoader(" ").construct_object(node)
        if isinstance(value, str) and "$" in value:
            return self._substitute(value, loc, env)
        return value

    def _substitute(self, value: str, loc: Loc, env: Mapping[str, str]) -> Any:
        if value.count("${") != len(_VAR.findall(value)):
            self.problems.append(
                self.problem(loc, f"bad ${{VAR}} syntax in {value!r}: a '${{' is never closed")
            )
            return value

        def replace(m: re.Match[str]) -> str:
            inner = m.group(1)
            name, sep, default = inner.partition(":-")
            if not _VAR_NAME.match(name):
                self.problems.append(
                    self.problem(
                        loc,
                        f"bad ${{VAR}} syntax {m.group(0)!r}: write ${{NAME}} or "
                        "${NAME:-default}, NAME made of letters, digits and _",
                    )
                )
                return m.group(0)
            if name in env:
                return env[name]
            if sep:
                return default
            self.problems.append(
                self.problem(
                    loc,
                    f"environment variable {name} is not set; set it or write ${{{name}:-default}}",
                )
            )
            return ""

        result = _VAR.sub(replace, value)
        # A whole-value substitution may produce a number or boolean: let YAML type it.
        if _VAR.fullmatch(value):
            try:
                typed = yaml.safe_load(result) if result else result
            except yaml.YAMLError:
                return result
            return typed if isinstance(typed, int | float | bool) else result
        return result


def _error_loc(data: Any, err: Any) -> Loc:
    loc = _loc_in(data, err["loc"])
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return (*loc, "type")  # point at the backend's `type:` line
    return loc


def _loc_in(data: Any, loc: tuple[Any, ...]) -> Loc:
    """Pydantic locations include union tags that are not keys in the data: drop those."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
            out.append(part)
        elif (
            isinstance(node, dict)
            and not isinstance(part, int)
            and part in _fields_known_somewhere()
        ):
            # A missing or unknown key: keep it so the message names it; position falls back.
            out.append(part)
    return tuple(out)


def _fields_known_somewhere() -> set[str]:
    names: set[str] = set()
    for model in _models():
        names.update(model.model_fields)
    return names


def _models() -> list[type[BaseModel]]:
    from gateway.policy import models

    return [
        obj
        for obj in vars(models).values()
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel
    ]


def _message(err: Any, data: Any) -> str:
    # The problem text reaches logs and the public /readyz: a value that looks like a key
    # (pasted into the wrong field) is masked as the logs mask it.
    return redact(_describe(err, data))


def _describe(err: Any, data: Any) -> str:
    loc = ".".join(str(p) for p in _loc_in(data, err["loc"])) or "policy"
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        options = _siblings(err["loc"])
        close = difflib.get_close_matches(key, options, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        allowed = f" allowed here: {', '.join(sorted(options))}" if options else ""
        return f"{loc}: unknown key {key!r}{hint}{allowed}"
    if kind == "missing":
        return f"{loc}: required key is missing; add it"
    if kind == "union_tag_invalid":
        return f"{loc}: unknown backend type; use {_backend_types()}"
    if kind == "union_tag_not_found":
        return f"{loc}: backend needs {_backend_types()}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{loc}: got {err.get('input')!r}; expected one of {expected}"
    text = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{loc}: {text} (got {got!r})"
    return f"{loc}: {text}"


def _backend_types() -> str:
    """`type: dllm`, `type: litellm` or `type: anthropic`: every family's tag."""
    tags = [f"`type: {f.tag}`" for f in FAMILIES]
    return ", ".join(tags[:-1]) + f" or {tags[-1]}" if len(tags) > 1 else tags[0]


def _siblings(loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed next to an unknown key, found by walking the models along `loc`."""
    from gateway.policy import models

    model: Any = models.Policy
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            # dict key or union tag: look the tag up by backend type
            tagged = BY_TYPE.get(part)
            if tagged is not None:
                model = tagged.config
            continue
        model = _inner_model(field.annotation)
    return list(model.model_fields) if model is not None and hasattr(model, "model_fields") else []


def _inner_model(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
