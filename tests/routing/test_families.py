"""Backend families are plug-ins: every family in `connectors.families.FAMILIES` is a policy
`type:`, named in `policy check`'s hints, priced, built and told apart by tier through that one
list."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.families import FAMILIES, family
from gateway.policy.loader import PolicyLoadError, load_policy
from gateway.policy.schema import render
from gateway.runtime import ConnectorFactory

MINIMAL = {
    "dllm": "type: dllm\n    engine: vllm\n    base_url: http://127.0.0.1:9/v1\n    model: m",
    "litellm": "type: litellm\n    model: openai/gpt-4.1-mini",
    "anthropic": "type: anthropic\n    model: claude-haiku-4-5",
}


def policy_text(backend: str) -> str:
    return (
        "version: 1\nbackends:\n  b:\n    "
        + backend
        + "\nbaseline: b\nroutes:\n  - name: r\n    target: b\ndefault_route: r\n"
    )


def test_every_family_has_a_minimal_example_here() -> None:
    assert {f.tag for f in FAMILIES} == set(MINIMAL)


@pytest.mark.parametrize("tag", sorted(MINIMAL))
def test_each_family_is_a_policy_type_built_through_its_plugin(tmp_path: Path, tag: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(policy_text(MINIMAL[tag]))
    policy = load_policy(path)
    config = policy.backends["b"]
    assert isinstance(config, family(tag).config)
    built = ConnectorFactory().build(policy)
    connector = built["b"][1]
    assert connector.backend_type == tag
    assert f'"{tag}"' in render()  # the JSON Schema lists the tag


def test_an_unknown_type_names_every_family(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(policy_text("type: tgi\n    model: m"))
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(path)
    text = str(caught.value)
    for f in FAMILIES:
        assert f"`type: {f.tag}`" in text


def test_exactly_the_dllm_family_is_the_fast_tier() -> None:
    assert [f.tag for f in FAMILIES if f.tier == "fast"] == ["dllm"]
