"""The one seam between a client API and the request path.

A dialect parses its API's request body into a `ChatRequest`, and renders what the pipeline
returns (a `Completion`, a stream's chunks and outcome, a `StepgateError`) in its API's shape.
Everything else (auth, limits, idempotency, routing, dispatch, the ledger) is shared by
`gateway.ingress.handler.ChatHandler`, whichever dialect it serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from gateway.core.errors import StepgateError
from gateway.core.types import ChatRequest, Completion
from gateway.relay import StreamOutcome
from gateway.trace import ResponseMeta


class Dialect(Protocol):
    name: str  # "openai", "anthropic"
    # The last frame of a complete stream: a stored (idempotent) stream must end with it.
    end_frame: bytes

    def check_headers(self, headers: Mapping[str, str]) -> None:
        """Raise BadRequest for a header the API requires and the caller got wrong."""

    def parse(self, body: bytes) -> ChatRequest:
        """The request body as the internal request; BadRequest naming what is wrong."""

    def completion(self, completion: Completion, request: ChatRequest, request_id: str) -> bytes:
        """A non-streamed answer's JSON body."""

    def frames(
        self, outcome: StreamOutcome, request: ChatRequest, request_id: str
    ) -> AsyncIterator[bytes]:
        """A stream's SSE frames; a failure after the first byte becomes an in-band error."""

    def error(self, error: StepgateError) -> tuple[int, bytes, dict[str, str]]:
        """Status, JSON body and extra headers of an error reply."""

    def error_frame(self, error: StepgateError) -> bytes:
        """An error inside a stream that has already started."""

    def headers(self, meta: ResponseMeta) -> dict[str, str]:
        """A routed answer's response headers: Stepgate's own and what the API's clients read."""

    def id_headers(self, request_id: str) -> dict[str, str]:
        """The request id in the header(s) the API's clients read, for an error reply."""
