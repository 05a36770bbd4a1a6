"""`stepgate simulate`: replay recorded traffic under one policy (or two, side by side).

`register(app)` adds the command to the lead's typer app. Nothing here calls a backend. The
replay machinery is imported inside the command: every CLI start (`stepgate serve` too) imports
this module.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated

import orjson
import typer

from gateway.simulate.gputime import GpuTime

ERRORS_SHOWN = 50
PROGRESS_MIN_BYTES = 1 << 20  # auto progress bar from 1 MiB of traffic, on a terminal
_DEFAULT_GPU = GpuTime()
_Advance = Callable[[int], None]


class Format(StrEnum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command(name="simulate")(simulate)


def simulate(
    policy: Annotated[Path, typer.Option("--policy", help="policy YAML to simulate")],
    traffic: Annotated[
        Path, typer.Option("--traffic", help='JSONL: {"id", "request", "headers"?, "response"?}')
    ],
    compare: Annotated[
        Path | None, typer.Option("--compare", help="a second policy, shown side by side")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write one JSON line per step (decision, cost)")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="report format")] = Format.table,
    force_auto: Annotated[
        bool,
        typer.Option(
            "--auto",
            help="route every step as model 'auto' (traffic that names provider models)",
        ),
    ] = False,
    gpu_tokens_per_s: Annotated[
        float, typer.Option(min=0.001, help="GPU-hour backends: output tokens per second")
    ] = _DEFAULT_GPU.output_tokens_per_s,
    gpu_prefill_tokens_per_s: Annotated[
        float, typer.Option(min=0.001, help="GPU-hour backends: prompt tokens per second")
    ] = _DEFAULT_GPU.prefill_tokens_per_s,
    gpu_overhead_ms: Annotated[
        float, typer.Option(min=0, help="GPU-hour backends: fixed time per attempt")
    ] = _DEFAULT_GPU.overhead_s * 1000,
    gpu_concurrency: Annotated[
        int,
        typer.Option(
            min=1, help="GPU-hour backends: requests served at once (1 = charge like the ledger)"
        ),
    ] = _DEFAULT_GPU.concurrency,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="progress bar on stderr (default: on a terminal, for files over 1 MiB)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Replay traffic through the classifier and router: steps, cost and savings per route."""
    from gateway.classify.classifier import Classifier
    from gateway.classify.model import WeightsError
    from gateway.policy.loader import PolicyLoadError, load_policy
    from gateway.simulate.costing import CostModel
    from gateway.simulate.replay import Replayer, Scenario
    from gateway.simulate.report import PolicySummary, Report
    from gateway.simulate.traffic import TrafficLineError, iter_lines, parse_line

    gpu = GpuTime(
        output_tokens_per_s=gpu_tokens_per_s,
        prefill_tokens_per_s=gpu_prefill_tokens_per_s,
        overhead_s=gpu_overhead_ms / 1000,
        concurrency=gpu_concurrency,
    )
    scenarios = []
    for path in [policy] if compare is None else [policy, compare]:
        try:
            loaded = load_policy(path)
        except PolicyLoadError as exc:
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            typer.echo(f"stepgate simulate: {path} is invalid", err=True)
            raise typer.Exit(1) from exc
        scenarios.append(Scenario(str(path), loaded, CostModel(loaded, gpu_time=gpu)))
    try:
        classifier = Classifier.load()
    except WeightsError as exc:
        typer.echo(f"stepgate simulate: cannot load the classifier: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        size = traffic.stat().st_size
        source = traffic.open("rb")
    except OSError as exc:
        typer.echo(f"stepgate simulate: cannot read {traffic}: {exc.strerror}", err=True)
        raise typer.Exit(1) from exc

    replayer = Replayer(classifier, tuple(scenarios), force_auto=force_auto)
    bases = sorted(
        {
            f"{name}: {s.costs.pricebook.basis(name)}"
            for s in scenarios
            for name in s.policy.backends
        }
    )
    wall_time = any("gpu-time" in b for b in bases)
    report = Report(
        traffic=str(traffic),
        assumption=(gpu.describe() if wall_time else "no backend is billed by GPU wall time")
        + "; pricing basis: "
        + ", ".join(bases),
        summaries=[PolicySummary(s) for s in scenarios],
    )
    show_progress = (
        progress if progress is not None else (sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES)
    )
    started = time.perf_counter()
    with source, _sink(out) as sink, _progress(show_progress, size, traffic.name) as advance:
        for number, raw in iter_lines(source):
            advance(len(raw))
            try:
                result = replayer.replay(parse_line(raw, number))
            except TrafficLineError as exc:
                report.skip(exc)
                if report.skipped <= ERRORS_SHOWN:
                    typer.echo(f"{traffic}:{exc.line}: {exc.message}", err=True)
                continue
            report.add(result)
            if sink is not None:
                sink.write(orjson.dumps(result.to_json()))
                sink.write(b"\n")
    report.elapsed_s = time.perf_counter() - started
    if report.skipped > ERRORS_SHOWN:
        typer.echo(
            f"{traffic}: ... {report.skipped - ERRORS_SHOWN} more malformed lines not shown",
            err=True,
        )
    if report.skipped:
        typer.echo(f"{traffic}: skipped {report.skipped} malformed lines", err=True)
    if fmt is Format.json:
        sys.stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report.render())
    if report.steps == 0:
        # Nothing was simulated: a report of zeros must not pass for a result in a script.
        why = f"all {report.skipped} lines were malformed" if report.skipped else "it is empty"
        typer.echo(
            f"stepgate simulate: no step could be read from {traffic} ({why}); each line is "
            '{"id": ..., "request": {OpenAI chat body}, "headers": {...}?, "response": {...}?}',
            err=True,
        )
        raise typer.Exit(1)


@contextlib.contextmanager
def _sink(path: Path | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    try:
        fh = path.open("wb")
    except OSError as exc:
        typer.echo(f"stepgate simulate: cannot write {path}: {exc.strerror}", err=True)
        raise typer.Exit(1) from exc
    with fh:
        yield fh


@contextlib.contextmanager
def _progress(enabled: bool, total_bytes: int, label: str) -> Iterator[_Advance]:
    if not enabled:
        yield _no_progress
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(label, total=total_bytes)
    pending = 0

    def advance(n: int) -> None:
        nonlocal pending
        pending += n
        if pending >= 256 * 1024:  # batch updates: rich takes a lock per call
            bar.advance(task, pending)
            pending = 0

    with bar:
        yield advance
        bar.advance(task, pending)


def _no_progress(n: int) -> None:
    return None
