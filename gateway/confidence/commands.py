"""`stepgate calibrate`: per-kind thresholds from labelled recorded answers (CLI edge only)."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

from gateway.confidence.calibrate import DEFAULT_TARGET, Calibration, calibrate, read_samples


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add the `calibrate` command to the stepgate CLI."""
    app.command("calibrate")(calibrate_command)


def calibrate_command(
    traffic: Annotated[
        Path,
        typer.Option(
            "--traffic",
            help="JSONL of recorded cheap answers: id, kind, request, response, correct.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    target: Annotated[
        float,
        typer.Option(
            "--target",
            min=0.0,
            max=0.999,
            help="Highest acceptable share of wrong answers among accepted ones.",
        ),
    ] = DEFAULT_TARGET,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table or json.")
    ] = OutputFormat.table,
) -> None:
    """Print, per step kind, the lowest confidence threshold that holds accepted-but-wrong
    answers under --target, and the escalation rate it costs."""
    with traffic.open(encoding="utf-8") as handle:
        samples, errors = read_samples(handle)
    for error in errors:
        typer.echo(f"{traffic}:{error.line}: {error.message}", err=True)
    if not samples:
        typer.echo(f"{traffic}: no usable lines", err=True)
        raise typer.Exit(1)
    result = calibrate(samples, target=target)
    if output is OutputFormat.json:
        body = result.to_dict() | {
            "skipped_lines": [{"line": e.line, "message": e.message} for e in errors],
            "policy_yaml": policy_yaml(result),
        }
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(render_table(result))
        if errors:
            typer.echo(f"skipped {len(errors)} malformed line(s); see stderr", err=True)


def render_table(result: Calibration) -> str:
    header = ("kind", "samples", "wrong", "threshold", "accepted", "wrong|acc", "escalated")
    rows = [header]
    notes: list[str] = []
    for k in result.kinds:
        rows.append(
            (
                k.kind,
                str(k.samples),
                f"{k.wrong / k.samples:.1%}",
                "none" if k.threshold is None else f"{k.threshold:.3f}",
                str(k.accepted),
                f"{k.wrong_rate_accepted:.1%}",
                f"{k.escalation_rate:.1%}",
            )
        )
        if k.note:
            notes.append(f"{k.kind}: {k.note}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"target: wrong among accepted <= {result.target:.1%}"]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.extend(notes)
    lines += [
        "",
        "# paste into the route's `escalation:` block (policies/*.yaml):",
        policy_yaml(result),
    ]
    return "\n".join(lines)


def policy_yaml(result: Calibration) -> str:
    """The thresholds as the policy's `escalation.per_kind` block, rounded up to 3 decimals
    (never below what was measured). A kind no threshold brings under the target escalates
    every answer (1.0); a kind with too few samples keeps its figure, flagged."""
    out = ["per_kind:"]
    for k in result.kinds:
        value = 1.0 if k.threshold is None else math.ceil(k.threshold * 1000) / 1000
        comment = ""
        if k.threshold is None:
            comment = f"  # no threshold holds wrong answers under {result.target:.1%}"
        elif k.note:
            comment = f"  # {k.note}"
        out.append(f"  {k.kind}: {value:.3f}{comment}")
    return "\n".join(out)
