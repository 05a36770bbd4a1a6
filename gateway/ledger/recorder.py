"""Hands each finished request to the ledger writer (queued; stored off the request path)."""

from __future__ import annotations

from gateway.ledger.writer import Ledger
from gateway.recording import Finished


class LedgerRecorder:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def record(self, finished: Finished) -> None:
        self.ledger.submit(finished.record)
