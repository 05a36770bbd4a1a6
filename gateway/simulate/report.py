"""Totals per route for each simulated policy, the steps two policies route differently, and
their rendering: an aligned text table for people, JSON for scripts. Money is summed as integer
nano-dollars and only formatted here."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from gateway.core.money import format_usd, nanos_to_usd
from gateway.simulate.replay import Scenario, StepResult
from gateway.simulate.traffic import TrafficLineError

DIFFERING_SHOWN = 20


@dataclass
class RouteTotals:
    route: str
    backend: str
    steps: int = 0
    cost_nanos: int = 0  # over steps whose cost is known
    baseline_nanos: int = 0  # over steps whose baseline cost is known
    savings_nanos: int = 0  # baseline - cost, over steps where both are known
    savings_base_nanos: int = 0  # the baseline cost of those same steps
    unpriced: int = 0  # steps whose cost or baseline cost is unknown

    def add(self, cost: int | None, baseline: int | None) -> None:
        self.steps += 1
        if cost is not None:
            self.cost_nanos += cost
        if baseline is not None:
            self.baseline_nanos += baseline
        if cost is None or baseline is None:
            self.unpriced += 1
        else:
            self.savings_nanos += baseline - cost
            self.savings_base_nanos += baseline

    def merge(self, other: RouteTotals) -> None:
        self.steps += other.steps
        self.cost_nanos += other.cost_nanos
        self.baseline_nanos += other.baseline_nanos
        self.savings_nanos += other.savings_nanos
        self.savings_base_nanos += other.savings_base_nanos
        self.unpriced += other.unpriced

    @property
    def savings_ratio(self) -> float | None:
        if self.savings_base_nanos == 0:
            return None
        return self.savings_nanos / self.savings_base_nanos

    def to_json(self, total_steps: int) -> dict[str, Any]:
        ratio = self.savings_ratio
        return {
            "route": self.route,
            "backend": self.backend,
            "steps": self.steps,
            "share": round(self.steps / total_steps, 6) if total_steps else 0.0,
            "cost_usd": format_usd(self.cost_nanos),
            "baseline_cost_usd": format_usd(self.baseline_nanos),
            "savings_usd": format_usd(self.savings_nanos),
            "savings_ratio": round(ratio, 6) if ratio is not None else None,
            "cost_nanos": self.cost_nanos,
            "baseline_cost_nanos": self.baseline_nanos,
            "savings_nanos": self.savings_nanos,
            "unpriced_steps": self.unpriced,
        }


class PolicySummary:
    """Per-route totals for one scenario; rows in policy order, unused routes included."""

    def __init__(self, scenario: Scenario) -> None:
        self.name = scenario.name
        self.baseline = scenario.policy.baseline
        self.unpriced_backends = scenario.costs.unpriced()
        self.routes: dict[str, RouteTotals] = {
            r.name: RouteTotals(r.name, r.target) for r in scenario.policy.routes
        }

    def add(self, route: str, backend: str, cost: int | None, baseline: int | None) -> None:
        totals = self.routes.get(route)
        if totals is None:  # a pinned alias: `alias:<name>`
            totals = self.routes[route] = RouteTotals(route, backend)
        totals.add(cost, baseline)

    def total(self) -> RouteTotals:
        out = RouteTotals("total", "")
        for totals in self.routes.values():
            out.merge(totals)
        return out

    def to_json(self) -> dict[str, Any]:
        total = self.total()
        return {
            "policy": self.name,
            "baseline": self.baseline,
            "unpriced_backends": self.unpriced_backends,
            "routes": [t.to_json(total.steps) for t in self.routes.values()],
            "total": total.to_json(total.steps),
        }


@dataclass
class Report:
    traffic: str
    assumption: str
    summaries: list[PolicySummary]
    recorded_usage: int = 0
    estimated_usage: int = 0
    skipped: int = 0
    errors: list[TrafficLineError] = field(default_factory=list)
    differing: list[dict[str, Any]] = field(default_factory=list)
    classify_us: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def steps(self) -> int:
        return self.recorded_usage + self.estimated_usage

    def add(self, result: StepResult) -> None:
        if result.usage_source == "recorded":
            self.recorded_usage += 1
        else:
            self.estimated_usage += 1
        self.classify_us.append(result.classify_us)
        for summary, d in zip(self.summaries, result.decisions, strict=True):
            summary.add(d.route, d.backend, d.cost_nanos, d.baseline_nanos)
        if len(result.decisions) > 1 and result.decisions[0].route != result.decisions[1].route:
            a, b = result.decisions[0], result.decisions[1]
            self.differing.append(
                {
                    "id": result.id,
                    "line": result.line,
                    "kind": result.profile.kind,
                    "difficulty": result.profile.difficulty,
                    "a": {"route": a.route, "backend": a.backend, "cost_nanos": a.cost_nanos},
                    "b": {"route": b.route, "backend": b.backend, "cost_nanos": b.cost_nanos},
                }
            )

    def skip(self, error: TrafficLineError) -> None:
        self.skipped += 1
        self.errors.append(error)

    def percentile_us(self, q: float) -> float | None:
        if not self.classify_us:
            return None
        ordered = sorted(self.classify_us)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def lines_per_s(self) -> float | None:
        handled = self.steps + self.skipped
        return handled / self.elapsed_s if self.elapsed_s > 0 else None

    def to_json(self) -> dict[str, Any]:
        p50, p99 = self.percentile_us(0.5), self.percentile_us(0.99)
        return {
            "traffic": self.traffic,
            "steps": self.steps,
            "usage": {"recorded": self.recorded_usage, "estimated": self.estimated_usage},
            "skipped": self.skipped,
            "errors": [{"line": e.line, "error": e.message} for e in self.errors],
            "assumption": self.assumption,
            "classify_us": {
                "p50": round(p50, 1) if p50 is not None else None,
                "p99": round(p99, 1) if p99 is not None else None,
            },
            "policies": [s.to_json() for s in self.summaries],
            "differing": self.differing if len(self.summaries) > 1 else None,
        }

    # --- text --------------------------------------------------------------------------------

    def render(self) -> str:
        lines = [self._headline(), self.assumption]
        p50, p99 = self.percentile_us(0.5), self.percentile_us(0.99)
        if p50 is not None and p99 is not None:
            speed = f"; {self.lines_per_s:,.0f} lines/s" if self.lines_per_s else ""
            lines.append(f"classifier: p50 {p50:.0f} us, p99 {p99:.0f} us per step{speed}")
        lines.append("")
        if len(self.summaries) == 1:
            lines += _single_table(self.summaries[0])
        else:
            lines += _compare_tables(self.summaries[0], self.summaries[1])
            lines.append("")
            lines += self._differing_table()
        for summary in self.summaries:
            if summary.unpriced_backends:
                lines.append(
                    f"note: {summary.name}: no price for {', '.join(summary.unpriced_backends)}; "
                    "steps sent there count in `steps` but not in the cost columns"
                )
        return "\n".join(lines) + "\n"

    def _headline(self) -> str:
        skipped = f"; {self.skipped} lines skipped" if self.skipped else "; no lines skipped"
        return (
            f"simulated {self.steps} steps from {self.traffic} (usage: {self.recorded_usage} "
            f"recorded, {self.estimated_usage} estimated{skipped})"
        )

    def _differing_table(self) -> list[str]:
        a, b = self.summaries[0].name, self.summaries[1].name
        if not self.differing:
            return [f"no step routes differently under {b} than under {a}"]
        out = [f"{len(self.differing)} steps route differently (A = {a}, B = {b}):"]
        rows = [["id", "kind", "A route (backend)", "B route (backend)", "A cost", "B cost"]]
        for d in self.differing[:DIFFERING_SHOWN]:
            rows.append(
                [
                    d["id"],
                    d["kind"],
                    f"{d['a']['route']} ({d['a']['backend']})",
                    f"{d['b']['route']} ({d['b']['backend']})",
                    _usd(d["a"]["cost_nanos"]),
                    _usd(d["b"]["cost_nanos"]),
                ]
            )
        out += _align(rows, right={4, 5})
        if len(self.differing) > DIFFERING_SHOWN:
            rest = len(self.differing) - DIFFERING_SHOWN
            out.append(f"... and {rest} more (--out FILE.jsonl has every step)")
        return out


def _single_table(summary: PolicySummary) -> list[str]:
    total = summary.total()
    header = ["route", "backend", "steps", "share", "cost", "baseline", "savings", "saved"]
    rows = [header]
    for t in [*summary.routes.values(), total]:
        rows.append(
            [
                t.route,
                t.backend,
                str(t.steps),
                _share(t.steps, total.steps),
                _usd(t.cost_nanos),
                _usd(t.baseline_nanos),
                _usd(t.savings_nanos),
                _pct(t.savings_ratio),
            ]
        )
    title = f"policy {summary.name} (baseline {summary.baseline}; USD)"
    return [title, *_align(rows, right={2, 3, 4, 5, 6, 7}, rule_before_last=True)]


def _compare_tables(a: PolicySummary, b: PolicySummary) -> list[str]:
    names = list(a.routes) + [n for n in b.routes if n not in a.routes]
    ta, tb = a.total(), b.total()
    rows = [["route", "A steps", "A share", "A cost", "B steps", "B share", "B cost"]]
    empty = RouteTotals("", "")
    for name in [*names, "total"]:
        ra = ta if name == "total" else a.routes.get(name, empty)
        rb = tb if name == "total" else b.routes.get(name, empty)
        rows.append(
            [
                name,
                str(ra.steps),
                _share(ra.steps, ta.steps),
                _usd(ra.cost_nanos),
                str(rb.steps),
                _share(rb.steps, tb.steps),
                _usd(rb.cost_nanos),
            ]
        )
    out = [f"A = {a.name} (baseline {a.baseline})", f"B = {b.name} (baseline {b.baseline})", ""]
    out += _align(rows, right={1, 2, 3, 4, 5, 6}, rule_before_last=True)
    out.append("")
    totals = [
        ["USD", "A", "B", "B - A"],
        ["cost", _usd(ta.cost_nanos), _usd(tb.cost_nanos), _usd(tb.cost_nanos - ta.cost_nanos)],
        [
            "baseline",
            _usd(ta.baseline_nanos),
            _usd(tb.baseline_nanos),
            _usd(tb.baseline_nanos - ta.baseline_nanos),
        ],
        [
            "savings",
            _usd(ta.savings_nanos),
            _usd(tb.savings_nanos),
            _usd(tb.savings_nanos - ta.savings_nanos),
        ],
        ["saved", _pct(ta.savings_ratio), _pct(tb.savings_ratio), ""],
    ]
    return out + _align(totals, right={1, 2, 3})


def _align(rows: list[list[str]], *, right: set[int], rule_before_last: bool = False) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    out = [line(rows[0])]
    for i, row in enumerate(rows[1:], start=1):
        if rule_before_last and i == len(rows) - 1:
            out.append("-" * len(line(rows[0])))
        out.append(line(row))
    return out


def _usd(nanos: int | None) -> str:
    if nanos is None:
        return "unknown"
    return str(nanos_to_usd(nanos).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN))


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _pct(ratio: float | None) -> str:
    return f"{100 * ratio:.1f}%" if ratio is not None else "-"
