"""A fake of Google AI Studio's Gemini API (`generateContent` / `streamGenerateContent`), the
wire litellm's `gemini/` provider speaks when given an `api_base`:

    POST {base}/models/{model}:generateContent               -> JSON
    POST {base}/models/{model}:streamGenerateContent?alt=sse -> `data: {...}` events

Answers `{"candidates": [{"content": {"parts": [{"text"}], "role": "model"}, "finishReason"}],
"usageMetadata": {promptTokenCount, candidatesTokenCount, totalTokenCount}}`; the key comes in
`x-goog-api-key`. Real HTTP on 127.0.0.1 in a thread; every request is recorded.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class GeminiRequest:
    path: str
    headers: dict[str, str]
    body: Any


class FakeGemini:
    def __init__(self) -> None:
        self.requests: list[GeminiRequest] = []
        self.reply = "ok"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(size)
                body = json.loads(raw) if raw else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.requests.append(GeminiRequest(self.path, headers, body))
                path = self.path.split("?", 1)[0]
                if not path.startswith("/models/") or ":" not in path:
                    self._json(
                        404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
                    )
                    return
                words = fake.reply.split(" ")
                prompt = sum(
                    len(str(part.get("text", "")).split())
                    for content in (body or {}).get("contents", [])
                    for part in content.get("parts", [])
                )
                usage = {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": len(words),
                    "totalTokenCount": prompt + len(words),
                }
                if path.endswith(":streamGenerateContent"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    for i, word in enumerate(words):
                        last = i == len(words) - 1
                        event: dict[str, Any] = {
                            "candidates": [
                                {
                                    "content": {
                                        "parts": [{"text": word + ("" if last else " ")}],
                                        "role": "model",
                                    },
                                    **({"finishReason": "STOP"} if last else {}),
                                    "index": 0,
                                }
                            ]
                        }
                        if last:
                            event["usageMetadata"] = usage
                        self.wfile.write(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
                    return
                self._json(
                    200,
                    {
                        "candidates": [
                            {
                                "content": {"parts": [{"text": fake.reply}], "role": "model"},
                                "finishReason": "STOP",
                                "index": 0,
                            }
                        ],
                        "usageMetadata": usage,
                        "modelVersion": path.split("/")[2].split(":")[0],
                    },
                )

            def _json(self, status: int, data: Any) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeGemini:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
