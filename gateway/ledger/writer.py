"""`Ledger`: the durable, batched, off-request-path writer of cost records.

`submit()` only appends to an in-memory queue. One background task owned by the Ledger takes
batches (every ~200 ms or 500 records), stores them in a worker thread, and when the database
is unreachable appends them to the local spool instead; it replays the spool once the database
answers again. Storage is idempotent (see `store`), so every request lands exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from gateway.core.records import RequestRecord
from gateway.db.engine import create_db_engine
from gateway.db.revision import at_head
from gateway.ledger.spool import Spool, read_records
from gateway.ledger.store import write_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LedgerOptions:
    batch_interval_s: float = 0.2
    batch_max: int = 500
    # How often to probe an unreachable database before replaying the spool.
    retry_interval_s: float = 1.0
    # Run `alembic upgrade head` on open (handy for the embedded SQLite default).
    upgrade: bool = False


class Ledger:
    """Owns the engine, the spool and the writer task. Use `await Ledger.open(...)`."""

    def __init__(self, *, engine: Engine, spool: Spool, options: LedgerOptions) -> None:
        self.engine = engine
        self._spool = spool
        self._options = options
        self._pending: deque[RequestRecord] = deque()
        self._wakeup = asyncio.Event()
        self._urgent = asyncio.Event()
        self._progress = asyncio.Condition()
        self._io = asyncio.Lock()
        self._submitted = 0
        self._handled = 0
        self._closing = False
        self._next_retry = 0.0
        self._orphans_waiting = True
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        *,
        database_url: str,
        spool_dir: Path | str,
        options: LedgerOptions | None = None,
    ) -> Ledger:
        opts = options or LedgerOptions()
        engine = create_db_engine(database_url)
        if opts.upgrade and not await asyncio.to_thread(at_head, engine):
            # Only a new or older database pays for alembic (import and run) at start-up.
            await cls._upgrade(database_url)
        ledger = cls(engine=engine, spool=Spool(Path(spool_dir)), options=opts)
        ledger._task = asyncio.create_task(ledger._run(), name="stepgate-ledger-writer")
        return ledger

    @staticmethod
    async def _upgrade(database_url: str) -> None:
        from gateway.db.migrate import upgrade

        try:
            await asyncio.to_thread(upgrade, database_url)
        except SQLAlchemyError as exc:
            log.error("ledger: database upgrade failed, records will be spooled: %s", exc)

    # -- the request path's side: never blocks, never raises --------------------------------

    def submit(self, record: RequestRecord) -> None:
        """Queue `record` for storage. Call from the event loop thread only."""
        if self._closing:
            log.error("ledger: record %s submitted after close; dropped", record.request_id)
            return
        self._pending.append(record)
        self._submitted += 1
        self._wakeup.set()
        if len(self._pending) >= self._options.batch_max:
            self._urgent.set()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def spool_depth(self) -> int:
        """Records waiting in this process's spool for the database to return."""
        return self._spool.depth

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    async def ping(self) -> bool:
        """True when the database answers `SELECT 1` (for /readyz)."""
        return await asyncio.to_thread(self._ping)

    async def flush(self) -> None:
        """Wait until everything submitted so far is stored or spooled; try a spool replay."""
        target = self._submitted
        self._urgent.set()
        self._wakeup.set()
        async with self._progress:
            await self._progress.wait_for(lambda: self._handled >= target or self._task_done())
        if self._spool.depth:
            self._next_retry = 0.0
            await self._replay()

    async def aclose(self) -> None:
        """Flush, stop the writer and dispose of the engine. Unstored records stay spooled."""
        if self._closing:
            return
        await self.flush()
        self._closing = True
        self._wakeup.set()
        self._urgent.set()
        if self._task is not None:
            await self._task
        self._spool.close()
        await asyncio.to_thread(self.engine.dispose)

    # -- the writer task -----------------------------------------------------------------------

    def _task_done(self) -> bool:
        return self._task is not None and self._task.done()

    async def _run(self) -> None:
        while True:
            batch: list[RequestRecord] = []
            try:
                if not self._pending:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    idle = self._options.retry_interval_s if self._has_backlog() else None
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), idle)
                if self._pending and len(self._pending) < self._options.batch_max:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._urgent.wait(), self._options.batch_interval_s)
                self._urgent.clear()
                batch = [
                    self._pending.popleft()
                    for _ in range(min(len(self._pending), self._options.batch_max))
                ]
                if batch:
                    await self._store(batch)
                if self._has_backlog():
                    await self._replay()
            except Exception:  # the writer must outlive any bug in one batch
                log.exception("ledger writer: unexpected error; continuing")
            finally:
                if batch:
                    self._handled += len(batch)
                    async with self._progress:
                        self._progress.notify_all()

    def _has_backlog(self) -> bool:
        return self._spool.depth > 0 or self._orphans_waiting

    async def _store(self, batch: list[RequestRecord]) -> None:
        async with self._io:
            if self._spool.depth:
                # The database was down a moment ago: keep order simple, spool behind the backlog.
                await self._spool_safely(batch)
                return
            try:
                await asyncio.to_thread(write_batch, self.engine, batch)
            except SQLAlchemyError as exc:
                log.warning("ledger: database write failed (%s); spooling %d", exc, len(batch))
                self._next_retry = time.monotonic() + self._options.retry_interval_s
                await self._spool_safely(batch)

    async def _spool_safely(self, batch: list[RequestRecord]) -> None:
        try:
            await asyncio.to_thread(self._spool.append, batch)
        except OSError:
            log.exception("ledger: spool append failed; %d records lost", len(batch))

    async def _replay(self) -> None:
        """Store the spool (ours, then any orphaned files) if the database answers."""
        if time.monotonic() < self._next_retry:
            return
        async with self._io:
            if not await asyncio.to_thread(self._ping):
                self._next_retry = time.monotonic() + self._options.retry_interval_s
                return
            try:
                if self._spool.depth:
                    records = await asyncio.to_thread(self._spool.records)
                    await asyncio.to_thread(self._store_all, records)
                    await asyncio.to_thread(self._spool.clear)
                    log.info("ledger: replayed %d spooled records", len(records))
                await asyncio.to_thread(self._adopt_orphans)
                self._orphans_waiting = False
            except SQLAlchemyError as exc:
                log.warning("ledger: spool replay failed (%s); will retry", exc)
                self._next_retry = time.monotonic() + self._options.retry_interval_s

    def _store_all(self, records: Sequence[RequestRecord]) -> None:
        """Store in batches; a batch the database refuses as invalid is retried one by one and
        the records it still refuses are set aside, so one bad record cannot block the spool."""
        size = self._options.batch_max
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            try:
                write_batch(self.engine, chunk)
            except DBAPIError as exc:
                if exc.connection_invalidated or not _is_data_error(exc):
                    raise
                for record in chunk:
                    try:
                        write_batch(self.engine, [record])
                    except DBAPIError as one:
                        if one.connection_invalidated or not _is_data_error(one):
                            raise
                        log.error("ledger: record %s rejected: %s", record.request_id, one)
                        self._spool.reject([record])

    def _adopt_orphans(self) -> None:
        with self._spool.orphans() as paths:
            for path in paths:
                records = read_records(path)
                self._store_all(records)
                path.unlink()
                log.info("ledger: replayed %d records from %s", len(records), path.name)

    def _ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False


def _is_data_error(exc: DBAPIError) -> bool:
    return isinstance(exc, DataError | IntegrityError)
