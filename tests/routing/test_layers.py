"""The import layers hold: `gateway.core` is the shared vocabulary and imports nothing of ours
above it; each connector family sits on `gateway.core` (and shared connector code) only; and
the packages of `gateway/` import each other without a loop, so the runtime, the policy
language, the ledger and the request path stay in one direction.

Read from the source with `ast` (no imports run): a new edge that closes a loop fails here
with the loop named.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _unit(module: str) -> str | None:
    """The layer unit a module belongs to: `gateway.<package or module>`, `connectors.<x>`."""
    parts = module.split(".")
    if parts[0] not in ("gateway", "connectors"):
        return None
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _imports() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the files (relative paths) that import it."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for base in ("gateway", "connectors"):
        for path in sorted((ROOT / base).rglob("*.py")):
            rel = path.relative_to(ROOT)
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            source = _unit(module)
            assert source is not None
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    target = _unit(name)
                    if target is not None and target != source:
                        edges[source][target].add(str(rel))
    return edges


EDGES = _imports()


def test_core_imports_nothing_above_it() -> None:
    bad = {t: sorted(f) for t, f in EDGES["gateway.core"].items()}
    assert not bad, f"gateway.core must import only gateway.core: {bad}"


def test_connectors_sit_on_core_only() -> None:
    bad = {
        (source, target): sorted(files)
        for source, targets in EDGES.items()
        if source.startswith("connectors")
        for target, files in targets.items()
        if not (target == "gateway.core" or target.startswith("connectors"))
    }
    assert not bad, f"connectors may import gateway.core and connectors only: {bad}"


def test_one_connector_family_does_not_import_another() -> None:
    shared = {
        "connectors.base",
        "connectors.http_status",
        "connectors.openai_wire",
        "connectors.cost_map",
        "connectors.family",
        "connectors.families",
    }
    bad = {
        (source, target): sorted(files)
        for source, targets in EDGES.items()
        if source.startswith("connectors.") and source not in shared
        for target, files in targets.items()
        if target.startswith("connectors.") and target not in shared
    }
    assert not bad, f"a family uses shared connector code, not another family: {bad}"


def _loops() -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in EDGES.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in list(EDGES):
        if v not in index:
            visit(v)
    return loops


def test_no_import_loop_between_packages() -> None:
    loops = _loops()
    detail = []
    for loop in loops:
        members = set(loop)
        for source in loop:
            for target, files in sorted(EDGES[source].items()):
                if target in members:
                    detail.append(f"  {source} -> {target} ({', '.join(sorted(files))})")
    assert not loops, "import loop(s) between packages:\n" + "\n".join(detail)


def test_the_policy_package_does_not_build_the_runtime() -> None:
    runtime = {
        "gateway.runtime",
        "gateway.dispatch",
        "gateway.pipeline",
        "gateway.health",
        "gateway.ledger",
        "gateway.limits",
        "gateway.services",
    }
    bad = {t: sorted(f) for t, f in EDGES["gateway.policy"].items() if t in runtime}
    assert not bad, f"gateway.policy is the policy language only: {bad}"


def test_a_litellm_import_stays_in_its_connector() -> None:
    found = []
    for base in ("gateway", "connectors"):
        for path in (ROOT / base).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if rel.parts[:2] == ("connectors", "litellm_ar"):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                if any(n == "litellm" or n.startswith("litellm.") for n in names):
                    found.append(str(rel))
    assert not found, f"litellm is imported only by connectors/litellm_ar: {found}"
