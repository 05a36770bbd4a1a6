"""Judging an answer against a caller's schema off the event loop, with a time limit.

A caller's schema decides how much work validation is (patterns, nesting, many properties),
so a request with one is judged in a small thread pool of its own and waited for at most
`timeout_s`; past it the verdict says the answer could not be checked (and the route's rule
escalates or flags it) while other tenants' requests run on. Requests without a schema are
judged inline: their checks are bounded by the answer alone and cost tens of microseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from gateway.confidence.verdict import PRIOR_UNCHECKED, Verdict, judge
from gateway.core.types import ChatRequest, Completion

log = logging.getLogger("stepgate.confidence")

JUDGE_TIMEOUT_S = 0.5
WORKERS = 2


class Judge:
    """Owns the pool; `aclose` shuts it down (the app's lifespan calls it)."""

    def __init__(self, *, timeout_s: float = JUDGE_TIMEOUT_S, workers: int = WORKERS) -> None:
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stepgate-judge")

    async def __call__(
        self,
        request: ChatRequest,
        completion: Completion,
        *,
        kind: str,
        checks: Sequence[str],
        second: Completion | None = None,
    ) -> Verdict:
        if not request.schemas():
            return judge(request, completion, kind=kind, checks=checks, second=second)
        call = partial(judge, request, completion, kind=kind, checks=checks, second=second)
        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            log.warning("judging an answer took over %.1f s; returned unchecked", self.timeout_s)
            return unchecked(f"checking the answer took longer than {self.timeout_s:g} s")

    def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def unchecked(why: str) -> Verdict:
    """The verdict for an answer whose checks could not finish: no evidence either way."""
    return Verdict(
        score=PRIOR_UNCHECKED,
        reasons=("unchecked",),
        details=f"unchecked: {why}",
        checks_run=(),
    )
