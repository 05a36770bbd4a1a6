"""What a finished request hands to its recorders (ledger, metrics, logs, traces).

The pipeline builds one `Finished` per request once its answer is out and gives it to each
`Recorder`; recorders depend on this module, never on the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.core.profile import StepProfile
from gateway.core.records import RequestRecord


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished request as the recorders see it."""

    record: RequestRecord
    profile: StepProfile
    overhead_ms: float
    classify_ns: tuple[int, int]  # time.time_ns() before and after classification
    request_model: str
    finish_reason: str | None
    traceparent: str | None


class Recorder(Protocol):
    def record(self, finished: Finished) -> None:
        """Take a finished request. Must not block or raise."""
