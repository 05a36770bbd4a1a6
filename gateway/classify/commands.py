"""`stepgate classifier ...`: train the step model and report tier accuracy under a policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.classify import report
from gateway.classify.classifier import DEFAULT_WEIGHTS, Classifier
from gateway.classify.model import WeightsError
from gateway.classify.train import (
    DataError,
    TrainOptions,
    calibrate,
    evaluate,
    read_steps,
    train,
)
from gateway.policy.loader import PolicyLoadError, load_policy

DEFAULT_POLICY = Path("policies/support.yaml")
_DEFAULTS = TrainOptions()
_SHOW_MISSES = 20


def register(app: typer.Typer) -> None:
    """Add the `classifier` command group to the CLI `app`."""
    group = typer.Typer(
        help="Train and evaluate the step classifier.", no_args_is_help=True, rich_markup_mode=None
    )

    @group.command("train")
    def train_command(
        data: Annotated[
            list[Path], typer.Argument(help="Labeled steps, one JSON object a line (files).")
        ],
        out: Annotated[Path, typer.Option(help="Where to write the weights.")] = DEFAULT_WEIGHTS,
        test: Annotated[
            Path | None, typer.Option(help="Held-out labeled steps to report accuracy on.")
        ] = None,
        val: Annotated[
            Path | None,
            typer.Option(
                help="Held-out labeled steps (not in DATA or --test) to calibrate P(deep) on."
            ),
        ] = None,
        policy: Annotated[
            Path, typer.Option(help="Policy that decides the tier (fast = a dLLM target).")
        ] = DEFAULT_POLICY,
        iterations: Annotated[int, typer.Option(min=1)] = _DEFAULTS.iterations,
    ) -> None:
        """Train on DATA, write the weights to --out, and report on --test."""
        try:
            steps = [step for path in data for step in read_steps(path)]
            held_out = read_steps(test) if test is not None else None
            calibration = read_steps(val) if val is not None else None
            routing = load_policy(policy)
            model = train(steps, TrainOptions(iterations=iterations))
            if calibration is not None:
                model = calibrate(model, calibration)
        except (DataError, PolicyLoadError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        out.parent.mkdir(parents=True, exist_ok=True)
        meta: dict[str, object] = {
            "trained_on": [str(path) for path in data],
            "steps": len(steps),
            "iterations": iterations,
        }
        if val is not None:
            meta["calibrated_on"] = str(val)
        out.write_bytes(model.to_json(meta=meta))
        typer.echo(f"trained on {len(steps)} steps: {len(model.weights)} weights -> {out}")
        classifier = Classifier(model)
        for name, part in (("train", steps), ("test", held_out)):
            if part is None:
                continue
            report = evaluate(classifier, part, routing)
            typer.echo(
                f"{name}: {report.steps} steps  tier accuracy {report.tier_accuracy:.2%}  "
                f"kind accuracy {report.kind_accuracy:.2%}  deep->fast {report.deep_to_fast}/"
                f"{report.deep_steps} ({report.deep_to_fast_rate:.2%})  "
                f"fast->deep {report.fast_to_deep}"
            )
            if name == "test":
                for step_id, want, got in report.misses[:_SHOW_MISSES]:
                    typer.echo(f"  miss {step_id}: labeled {want}, got {got}")
                if len(report.misses) > _SHOW_MISSES:
                    typer.echo(f"  ... and {len(report.misses) - _SHOW_MISSES} more")

    @group.command("eval")
    def eval_command(
        data: Annotated[list[Path], typer.Argument(help="Labeled steps, one JSON object a line.")],
        weights: Annotated[Path, typer.Option(help="Weights file.")] = DEFAULT_WEIGHTS,
        policy: Annotated[Path, typer.Option(help="Policy deciding the tier.")] = DEFAULT_POLICY,
        curve: Annotated[
            bool,
            typer.Option(
                "--curve", help="Also print served-fast share vs deep->fast per max_p_deep."
            ),
        ] = False,
    ) -> None:
        """Tier accuracy, deep->fast and fast->deep rates and kind accuracy of WEIGHTS on each
        DATA file, per kind, language and source, with confusion matrices."""
        try:
            parts = [(path, read_steps(path)) for path in data]
            routing = load_policy(policy)
            classifier = Classifier.load(weights)
        except (DataError, PolicyLoadError, WeightsError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        for path, steps in parts:
            judged = report.judge(classifier, steps, routing)
            typer.echo(f"== {path}")
            typer.echo(report.tier_line(judged))
            for field in ("kind", "lang", "source"):
                for line in report.breakdown(judged, field):
                    typer.echo(line)
            for line in report.confusion(judged):
                typer.echo(line)
            if curve:
                for line in report.curve(judged):
                    typer.echo(line)

    app.add_typer(group, name="classifier")
