"""The fixed latency histogram kept in every rollup row, and percentiles read back from it.

Bucket `i` counts requests with `BOUNDS_MS[i-1] < latency_ms <= BOUNDS_MS[i]`; the last bucket is
open-ended. Summing bucket columns over any set of rollup rows gives the histogram of exactly
those requests, so p50/p95 never need the raw rows. The bounds are part of the schema (one
column each): changing them needs a migration.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

BOUNDS_MS: tuple[int, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700,
    1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000, 20000, 30000, 60000, 120000,
)  # fmt: skip

COLUMNS: tuple[str, ...] = (*(f"lat_le_{b}" for b in BOUNDS_MS), f"lat_gt_{BOUNDS_MS[-1]}")


def bucket_index(latency_ms: float) -> int:
    """The bucket that counts `latency_ms` (0 .. len(BOUNDS_MS))."""
    return bisect_left(BOUNDS_MS, latency_ms)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) in ms, interpolated linearly inside its bucket.

    The estimate is within the bucket holding the true value; None when there are no counts.
    The open-ended last bucket reports its lower bound.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = 0.0 if i == 0 else float(BOUNDS_MS[i - 1])
            if i >= len(BOUNDS_MS):
                return lower
            upper = float(BOUNDS_MS[i])
            return round(lower + (upper - lower) * (rank - seen) / count, 1)
        seen += count
    return float(BOUNDS_MS[-1])
