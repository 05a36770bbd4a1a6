"""The `stepgate` command line (typer): serve, policy check/explain, and the area commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

if TYPE_CHECKING:  # imported where used: `stepgate --help` stays fast
    from gateway.connlimits import ConnectionLimits
    from gateway.policy.models import Policy
    from gateway.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Stepgate routing gateway",
    # Plain help, wrapped to the terminal: rich tables cut long option names at 80 columns.
    rich_markup_mode=None,
)
policy_app = typer.Typer(
    no_args_is_help=True, help="Validate and explain routing policies", rich_markup_mode=None
)
app.add_typer(policy_app, name="policy")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"stepgate {version('stepgate')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("stepgate (not installed: no version metadata)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Stepgate routing gateway"""


@app.command()
def serve(
    policy: Annotated[
        Path | None, typer.Option(help="policy YAML (default $STEPGATE_POLICY)")
    ] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Run the gateway."""
    import uvicorn
    from pydantic import ValidationError

    from gateway.policy.loader import PolicyLoadError, load_policy
    from gateway.settings import Settings, describe_invalid

    if policy is not None:
        os.environ["STEPGATE_POLICY"] = str(policy)
    try:
        settings = Settings()
    except ValidationError as exc:
        typer.echo(f"stepgate: invalid settings: {describe_invalid(exc)}", err=True)
        raise typer.Exit(2) from exc
    try:
        loaded = load_policy(settings.policy)
    except PolicyLoadError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"stepgate: refusing to start: {settings.policy} is invalid", err=True)
        raise typer.Exit(1) from exc
    if workers > 1 and not settings.redis_url:
        typer.echo(
            f"stepgate: refusing to start {workers} workers without STEPGATE_REDIS_URL: rate "
            "limits, budgets and circuit state are per process without Redis, so every limit "
            "would silently multiply by the number of workers. Set STEPGATE_REDIS_URL or use "
            "--workers 1.",
            err=True,
        )
        raise typer.Exit(2)
    if workers > 1:
        _fresh_multiproc_dir()
    _exit_cleanly_on_sigterm()
    uvicorn.run(
        "gateway.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        # uvicorn believes X-Forwarded-* from 127.0.0.1 by default; believe only the proxies
        # STEPGATE_TRUSTED_PROXIES names (none by default), as the app itself does.
        forwarded_allow_ips=[str(network) for network in settings.trusted_proxies],
        loop="auto",
        http=_http_protocol(_connection_limits(settings, loaded)),
        timeout_keep_alive=settings.keepalive_s,
        # On SIGTERM/SIGINT uvicorn stops accepting, lets in-flight requests run this long,
        # then cancels the rest (gateway.drain answers them) and runs the lifespan shutdown,
        # which flushes the ledger and the spans; each worker does the same with --workers.
        timeout_graceful_shutdown=settings.drain_s,
    )


def _exit_cleanly_on_sigterm() -> None:
    """Exit 0 after a drained SIGTERM.

    uvicorn handles SIGTERM itself while it serves; after its graceful shutdown it restores
    the handler it found and raises the signal again, so with the default handler a process
    that drained cleanly would still die of the signal (exit status -15). Before uvicorn takes
    over, this ends start-up the same way.
    """
    import signal

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)


def _connection_limits(settings: Settings, policy: Policy) -> ConnectionLimits:
    """The caps and read timeouts, with RLIMIT_NOFILE raised so the caps bind before fds do."""
    from gateway.connlimits import (
        ConnectionLimits,
        inbound_cap,
        raise_nofile_limit,
        upstream_reserve,
    )

    fds = raise_nofile_limit()
    cap = inbound_cap(
        requested=settings.max_connections,
        fd_limit=fds.soft if fds is not None else None,
        reserve=upstream_reserve(policy),
    )
    if cap < settings.max_connections and fds is not None:
        typer.echo(
            f"stepgate: STEPGATE_MAX_CONNECTIONS={settings.max_connections} lowered to {cap}: "
            f"the fd limit is {fds.soft} (hard {fds.hard}) and upstreams and the database "
            "need the rest; raise the hard limit (`ulimit -Hn`) to allow more",
            err=True,
        )
    return ConnectionLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=cap,
        max_connections_per_client=settings.max_connections_per_client,
    )


def _http_protocol(limits: ConnectionLimits) -> Any:
    """The guarded, coalescing httptools protocol, or uvicorn's choice without httptools."""
    try:
        from gateway.http_protocol import GuardedProtocolFactory
    except ImportError:  # httptools is not installed: uvicorn falls back to h11
        return "auto"
    return GuardedProtocolFactory(limits)


def _fresh_multiproc_dir() -> None:
    """prometheus_client multiprocess mode: one empty directory per server start."""
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="stepgate-metrics-")


@policy_app.command("check")
def policy_check(path: Path) -> None:
    """Validate a policy file: exit 0, or 1 with PATH:LINE:COL: message per problem."""
    from gateway.policy.loader import PolicyLoadError, load_policy

    try:
        policy = load_policy(path)
    except PolicyLoadError as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        raise typer.Exit(1) from exc
    typer.echo(
        f"{path}: ok ({len(policy.backends)} backends, {len(policy.routes)} routes, "
        f"baseline {policy.baseline})"
    )


@policy_app.command("explain")
def policy_explain(
    path: Path,
    request: Annotated[Path, typer.Option("--request", help="OpenAI chat request JSON file")],
    header: Annotated[list[str] | None, typer.Option("--header", help="K:V, repeatable")] = None,
    team: Annotated[
        str | None, typer.Option("--team", help="the caller's team (routes can match on it)")
    ] = None,
) -> None:
    """Show how a request is classified and routed, and why other routes did not match."""
    from gateway.classify.classifier import Classifier
    from gateway.core.errors import StepgateError
    from gateway.policy.loader import PolicyLoadError, load_policy
    from gateway.routing import decide

    try:
        policy = load_policy(path)
    except PolicyLoadError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from exc
    try:
        body = orjson.loads(request.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        typer.echo(f"{request}: cannot read request JSON: {exc}", err=True)
        raise typer.Exit(1) from exc
    headers: dict[str, str] = {}
    for item in header or []:
        key, sep, value = item.partition(":")
        if not sep:
            typer.echo(f"--header {item!r}: write it as Name:Value", err=True)
            raise typer.Exit(1)
        headers[key.strip().lower()] = value.strip()
    from gateway.ingress.openai import parse_chat

    try:
        chat = parse_chat(body)
        profile = Classifier.load().classify(chat, headers)
        decision = decide(policy, profile, model=chat.model, team=team, metadata=chat.metadata)
    except StepgateError as exc:
        typer.echo(f"{request}: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    backend = policy.backends[decision.target]
    out = {
        "kind": profile.kind,
        "difficulty": round(profile.difficulty, 3),
        "p_deep": round(profile.difficulty, 3),
        # Each route's tier operating point that P(deep) is compared with.
        "max_p_deep": {
            r.name: r.match.max_p_deep
            for r in policy.routes
            if r.match is not None and r.match.max_p_deep is not None
        },
        "latency_budget_ms": profile.latency_budget_ms,
        "evidence": profile.evidence,
        "signals": list(profile.signals),
        "prompt_tokens": profile.prompt_tokens,
        "expects_json": profile.expects_json,
        "has_tools": profile.has_tools,
        "language": profile.language,
        "team": team,
        "route": decision.route,
        "via": decision.via,
        "backend": decision.target,
        "backend_type": backend.type,
        "fallbacks": list(decision.fallbacks),
        "context_fallbacks": list(decision.context_fallbacks),
        # Candidates in the order they would be called (context windows applied).
        "candidates": list(decision.candidates),
        "too_small_for_step": list(decision.too_small),
        "routes": [
            {"route": name, "matched": False, "why_not": why} for name, why in decision.skipped
        ]
        + [{"route": decision.route, "matched": True}],
    }
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")


def _register_area_commands() -> None:
    """Area modules add their own commands (ledger, keys, classifier, calibrate, ...)."""
    from gateway.classify import commands as classify_commands
    from gateway.confidence import commands as confidence_commands
    from gateway.ledger import commands as ledger_commands
    from gateway.limits import commands as limits_commands
    from gateway.simulate import commands as simulate_commands

    ledger_commands.register(app)
    limits_commands.register(app)
    classify_commands.register(app)
    confidence_commands.register(app)
    simulate_commands.register(app)


def main() -> None:
    _register_area_commands()
    app()
