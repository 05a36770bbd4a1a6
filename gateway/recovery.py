"""Stream recovery after the first byte: what a spliced stream needs besides dispatch.

A route's `stream_recovery` decides what happens when a stream fails after content reached the
caller (ADR 0003 fixed the backend at the first byte; this is the exception to it):

- `restart`: the pipeline holds back the first `stream_buffer_tokens` tokens; a failure inside
  them is retried on the next candidate and the caller never sees it.
- `continue`: the next candidate is asked to go on from the text already sent
  (`ChatRequest.continued`: prefill where the backend continues a final assistant message,
  else an instruction), and its chunks are spliced into the same stream: ids rewritten to the
  first stream's, its role chunk dropped, and, when it was asked by instruction, any repeat of
  the text already sent at the seam cut off (`Seam`). A backend that refuses the continuation
  leaves the caller a clean in-band error, never a duplicated or garbled answer.

Tool-call streams are never continued (half a call's arguments cannot be resumed reliably).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from gateway.core.types import Chunk

# A repeat shorter than this at the seam is taken as the continuation's own words.
MIN_OVERLAP_CHARS = 12
# How much of the continuation is held back to look for a repeat of the text already sent.
SEAM_WINDOW_CHARS = 512


def tokens_in(chunk: Chunk) -> int:
    """Generated tokens in one chunk: its logprob entries, else one per content delta."""
    if chunk.logprobs:
        return len(chunk.logprobs)
    return 1 if (chunk.content or chunk.tool_calls) else 0


class Seam:
    """Joins a continuation to the text already sent, chunk by chunk.

    `feed` returns the chunks to relay now; `flush` what is still held back when the
    continuation ends. With `dedupe`, content is held back until `SEAM_WINDOW_CHARS` (or the
    length of the text sent, if shorter) have arrived, then the longest prefix of it that
    repeats the end of `sent` (at least `MIN_OVERLAP_CHARS`) is cut.
    """

    def __init__(self, sent: str, *, first: Chunk, dedupe: bool) -> None:
        self._sent = sent
        self._id, self._model, self._created = first.id, first.model, first.created
        self._dedupe = dedupe
        self._held: list[Chunk] = []
        self._held_text = ""
        self._open = not dedupe  # True once the seam is decided and chunks pass straight

    def feed(self, chunk: Chunk) -> list[Chunk]:
        chunk = dataclasses.replace(
            chunk, id=self._id, model=self._model or chunk.model, created=self._created, role=None
        )
        if self._open:
            return [chunk] if _carries(chunk) else []
        self._held.append(chunk)
        self._held_text += chunk.content or ""
        enough = min(len(self._sent), SEAM_WINDOW_CHARS)
        if len(self._held_text) >= enough + MIN_OVERLAP_CHARS or chunk.finish_reason:
            return list(self._release())
        return []

    def flush(self) -> list[Chunk]:
        return [] if self._open else list(self._release())

    def _release(self) -> Iterator[Chunk]:
        self._open = True
        cut = overlap(self._sent, self._held_text)
        for chunk in self._held:
            text = chunk.content or ""
            if cut and text:
                take = min(cut, len(text))
                cut -= take
                chunk = dataclasses.replace(chunk, content=text[take:], logprobs=None)
                if not chunk.content and not (chunk.tool_calls or chunk.finish_reason):
                    continue
            if _carries(chunk):
                yield chunk
        self._held = []


def overlap(sent: str, continuation: str) -> int:
    """Characters at the start of `continuation` that repeat the end of `sent` (or all of
    `sent`, when the continuation starts the answer over); 0 below `MIN_OVERLAP_CHARS`."""
    if continuation.startswith(sent) and len(sent) >= MIN_OVERLAP_CHARS:
        return len(sent)
    longest = min(len(sent), len(continuation))
    for size in range(longest, MIN_OVERLAP_CHARS - 1, -1):
        if sent.endswith(continuation[:size]):
            return size
    return 0


def _carries(chunk: Chunk) -> bool:
    return bool(chunk.content or chunk.tool_calls or chunk.finish_reason or chunk.usage)
