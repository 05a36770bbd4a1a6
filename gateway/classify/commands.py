"""`stepgate classifier ...`: train the step model and report tier accuracy under a policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.classify.classifier import DEFAULT_WEIGHTS, Classifier
from gateway.classify.model import WeightsError
from gateway.classify.train import DataError, TrainOptions, evaluate, read_steps, train
from gateway.policy.loader import PolicyLoadError, load_policy

DEFAULT_POLICY = Path("policies/support.yaml")
_DEFAULTS = TrainOptions()


def register(app: typer.Typer) -> None:
    """Add the `classifier` command group to the CLI `app`."""
    group = typer.Typer(help="Train and evaluate the step classifier.", no_args_is_help=True)

    @group.command("train")
    def train_command(
        data: Annotated[Path, typer.Argument(help="Labeled steps, one JSON object a line.")],
        out: Annotated[Path, typer.Option(help="Where to write the weights.")] = DEFAULT_WEIGHTS,
        test: Annotated[
            Path | None, typer.Option(help="Held-out labeled steps to report accuracy on.")
        ] = None,
        policy: Annotated[
            Path, typer.Option(help="Policy that decides the tier (fast = a dLLM target).")
        ] = DEFAULT_POLICY,
        epochs: Annotated[int, typer.Option(min=1)] = _DEFAULTS.epochs,
        seed: Annotated[int, typer.Option()] = _DEFAULTS.seed,
    ) -> None:
        """Train on DATA, write the weights to --out, and report on --test."""
        try:
            steps = read_steps(data)
            held_out = read_steps(test) if test is not None else None
            routing = load_policy(policy)
        except (DataError, PolicyLoadError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        model = train(steps, TrainOptions(epochs=epochs, seed=seed))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(
            model.to_json(meta={"trained_on": str(data), "steps": len(steps), "epochs": epochs})
        )
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
                for step_id, want, got in report.misses:
                    typer.echo(f"  miss {step_id}: labeled {want}, got {got}")

    @group.command("eval")
    def eval_command(
        data: Annotated[Path, typer.Argument(help="Labeled steps, one JSON object a line.")],
        weights: Annotated[Path, typer.Option(help="Weights file.")] = DEFAULT_WEIGHTS,
        policy: Annotated[Path, typer.Option(help="Policy deciding the tier.")] = DEFAULT_POLICY,
    ) -> None:
        """Report tier accuracy and the deep->fast rate of WEIGHTS on DATA."""
        try:
            steps = read_steps(data)
            routing = load_policy(policy)
            classifier = Classifier.load(weights)
        except (DataError, PolicyLoadError, WeightsError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        report = evaluate(classifier, steps, routing)
        typer.echo(
            f"{report.steps} steps  tier accuracy {report.tier_accuracy:.2%}  kind accuracy "
            f"{report.kind_accuracy:.2%}  deep->fast {report.deep_to_fast}/{report.deep_steps} "
            f"({report.deep_to_fast_rate:.2%})  fast->deep {report.fast_to_deep}"
        )

    app.add_typer(group, name="classifier")
