"""The local append-only spool that holds ledger records while the database is unreachable.

Each `Spool` owns one file, `spool-<uuid>.jsonl`, locked (flock) for as long as it is open, with
one JSON record per line, fsync'd on every append. Files left by a process that died are
unlocked, so any live spool can adopt them (`orphans`). Replay is safe to repeat: the store is
idempotent on (request_id, attempt), so a replay cut short is simply replayed again.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from gateway.core.records import AttemptRecord, RequestRecord

log = logging.getLogger(__name__)

PATTERN = "spool-*.jsonl"
REJECTED = "rejected.jsonl"


def encode(record: RequestRecord) -> bytes:
    return orjson.dumps(dataclasses.asdict(record)) + b"\n"


def decode(line: bytes) -> RequestRecord:
    data: dict[str, Any] = orjson.loads(line)
    attempts = tuple(AttemptRecord(**a) for a in data.pop("attempts"))
    return RequestRecord(**data, attempts=attempts)


def read_records(path: Path) -> list[RequestRecord]:
    """Every complete record in `path`; a torn last line (crash mid-append) is skipped."""
    records: list[RequestRecord] = []
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(decode(line))
            except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
                log.error("ledger spool %s:%d: unreadable record skipped: %s", path, number, exc)
    return records


class Spool:
    """One process's spool file. Not thread-safe: the ledger's writer is its only user."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / f"spool-{uuid.uuid4().hex}.jsonl"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.depth = 0

    def append(self, records: Sequence[RequestRecord]) -> None:
        """Append and fsync; raises OSError if the disk refuses."""
        if not records:
            return
        os.write(self._fd, b"".join(encode(r) for r in records))
        os.fsync(self._fd)
        self.depth += len(records)

    def records(self) -> list[RequestRecord]:
        return read_records(self.path)

    def clear(self) -> None:
        """Drop everything appended so far (after it has been stored)."""
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self.depth = 0

    def reject(self, records: Sequence[RequestRecord]) -> None:
        """Set aside records the database refuses for a reason other than being unreachable."""
        with (self.directory / REJECTED).open("ab") as f:
            f.write(b"".join(encode(r) for r in records))
            f.flush()
            os.fsync(f.fileno())

    @contextmanager
    def orphans(self) -> Iterator[list[Path]]:
        """Spool files of dead processes, locked for the duration; delete them once stored."""
        held: list[tuple[Path, int]] = []
        try:
            for path in sorted(self.directory.glob(PATTERN)):
                if path == self.path:
                    continue
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)  # a live process owns it
                    continue
                if not path.exists():  # adopted and removed by another process meanwhile
                    os.close(fd)
                    continue
                held.append((path, fd))
            yield [path for path, _ in held]
        finally:
            for _, fd in held:
                os.close(fd)

    def orphan_depth(self) -> int:
        return sum(
            sum(1 for line in p.read_bytes().splitlines() if line.strip())
            for p in self.directory.glob(PATTERN)
            if p != self.path
        )

    def close(self) -> None:
        """Release the file; an empty one is removed, a non-empty one waits to be adopted."""
        if self._fd < 0:
            return
        if self.depth == 0 and os.fstat(self._fd).st_size == 0:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = -1
