"""One non-OpenAI JSON endpoint of a dLLM server (SGLang's `/generate`, Inception's `/decisions`)
behind one owned keep-alive connection pool.

The shared exchange (`connectors.openai_wire.exchange`: status -> our error tree, deadlines,
the first-token and stall timeouts, SSE), with the bodies handed back as parsed JSON for the
engine's own pure module to read. Error bodies are read in every shape these servers send:
`{"error": {"message"}}`, `{"error": "..."}`, FastAPI's `{"detail": ...}` and SGLang's
`{"object": "error", "message"}`. Upstream text reaches an error only through `relayable`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from connectors.openai_wire.exchange import Exchange
from gateway.core.deadline import Deadline


class JsonEndpoint(Exchange):
    """POSTs JSON bodies to `url` for the backend `backend` (named in errors): `post` for the
    answer's parsed JSON, `events` for a stream's; `unavailable` and `status_error` make our
    errors of what the engine's module finds wrong in them."""

    def events(self, body: dict[str, Any], deadline: Deadline) -> AsyncGenerator[Any, None]:
        """The parsed JSON of each SSE `data:` event until `[DONE]` or the end of the stream
        (whether the stream finished is the caller's to judge); an error event is raised."""
        return self.sse(body, deadline, _JsonEvents(self))

    def error_text(self, data: Any) -> tuple[str, str | None]:
        """(message, code) of an error body in any of the shapes in the module docstring."""
        if isinstance(data, dict) and not isinstance(data.get("error"), dict | str):
            detail = data.get("detail")
            if isinstance(detail, str):
                return detail, None
            if isinstance(detail, list):
                # FastAPI validation errors: [{"loc": [...], "msg": "...", "type": "..."}]
                parts = []
                for item in detail:
                    if isinstance(item, dict):
                        loc = ".".join(str(p) for p in item.get("loc") or ())
                        parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
                return "; ".join(parts) or str(detail), None
            if isinstance(data.get("message"), str):
                return data["message"], None
        return super().error_text(data)


class _JsonEvents:
    """Each event's JSON as it is, an error event raised; the stream's end is the caller's."""

    stopped = False
    finished = True

    def __init__(self, endpoint: JsonEndpoint) -> None:
        self._endpoint = endpoint

    def feed(self, payload: bytes) -> tuple[Any]:
        data = self._endpoint.event(payload, unit="event")
        self._endpoint.raise_reported(data)
        return (data,)
