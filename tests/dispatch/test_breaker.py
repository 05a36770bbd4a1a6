"""Circuit breaker state machine, driven by an injected clock: no sleeping, no I/O."""

from __future__ import annotations

import json

from gateway.health.breaker import Breakers, State, Transition
from gateway.policy.models import CircuitBreaker

EPOCH = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, State, State]] = []

    def __call__(self, backend: str, old: State, new: State) -> None:
        self.seen.append((backend, old, new))


def make(**fields: object) -> tuple[Breakers, Clock, Recorder]:
    # min_calls high by default so only the consecutive-failure rule is in play.
    config = CircuitBreaker.model_validate({"min_calls": 1000, **fields})
    clock, rec = Clock(), Recorder()
    return Breakers(config, clock=clock, wall=clock.wall, on_transition=rec), clock, rec


def trip(b: Breakers, backend: str, n: int) -> None:
    for _ in range(n):
        assert b.allow(backend)
        b.failure(backend)


def test_opens_after_exactly_failures_in_a_row() -> None:
    b, _, rec = make(failures=3)
    trip(b, "x", 2)
    assert b.state("x") == "closed" and b.allow("x")
    b.failure("x")
    assert b.state("x") == "open"
    assert not b.allow("x")
    assert rec.seen == [("x", "closed", "open")]
    assert b.allow("other"), "breakers are per backend"


def test_a_success_resets_the_failure_run() -> None:
    b, _, _ = make(failures=3)
    trip(b, "x", 2)
    b.success("x")
    trip(b, "x", 2)
    assert b.state("x") == "closed"
    assert b.snapshot()["x"]["consecutive_failures"] == 2
    b.failure("x")
    assert b.state("x") == "open"


def test_error_rate_opens_only_with_min_calls() -> None:
    b, clock, _ = make(failures=100, error_rate=0.5, min_calls=10, window_s=30)
    # 9 calls, 5 failed (over the rate) but under min_calls.
    for i in range(9):
        clock.now += 0.5
        if i % 2 == 0:
            b.failure("x")
        else:
            b.success("x")
    assert b.state("x") == "closed"
    # 10th call fails: 6/10 >= 0.5 with min_calls reached.
    b.failure("x")
    assert b.state("x") == "open"

    c, _, _ = make(failures=100, error_rate=0.5, min_calls=10, window_s=30)
    for _ in range(6):
        c.success("y")
    for _ in range(4):
        c.failure("y")
    assert c.state("y") == "closed", "4/10 failed is under the 0.5 rate"
    c.failure("y")  # 5/11 still under
    assert c.state("y") == "closed"
    c.failure("y")  # 6/12 = 0.5
    assert c.state("y") == "open"


def test_window_buckets_expire_old_calls() -> None:
    b, clock, _ = make(failures=100, error_rate=0.5, min_calls=4, window_s=10)
    for _ in range(3):
        b.failure("x")
    clock.now += 5
    b.success("x")
    assert b.snapshot()["x"]["window_calls"] == 4
    # The three failures at t=0 leave the 10 s window; the success at t=5 stays.
    clock.now += 5.5
    snap = b.snapshot()["x"]
    assert (snap["window_calls"], snap["window_failures"]) == (1, 0)
    b.failure("x")
    b.failure("x")
    assert b.state("x") == "closed", "expired failures must not count toward min_calls"
    b.failure("x")  # 4 calls in window, 3 failed
    assert b.state("x") == "open"
    # A long gap empties the whole ring.
    c, clock2, _ = make(failures=100, min_calls=4, window_s=10)
    c.failure("y")
    clock2.now += 1000
    assert c.snapshot()["y"]["window_calls"] == 0


def test_open_skips_until_cooldown_then_grants_exactly_probes() -> None:
    b, clock, rec = make(failures=1, cooldown_s=10, probes=2)
    trip(b, "x", 1)
    clock.now += 9.9
    assert not b.allow("x") and not b.allow("x")
    assert b.state("x") == "open"
    clock.now += 0.1
    assert b.allow("x")
    assert b.state("x") == "half_open"
    assert b.allow("x")
    assert not b.allow("x"), "only `probes` calls at a time"
    assert b.snapshot()["x"]["probes_in_flight"] == 2
    assert rec.seen == [("x", "closed", "open"), ("x", "open", "half_open")]


def test_probe_success_closes_and_starts_fresh() -> None:
    b, clock, rec = make(failures=2, cooldown_s=10)
    trip(b, "x", 2)
    clock.now += 10
    assert b.allow("x")
    b.success("x")
    assert b.state("x") == "closed" and b.allow("x")
    snap = b.snapshot()["x"]
    assert snap["consecutive_failures"] == 0 and snap["window_calls"] == 0
    assert snap["opened_at"] is None and snap["retry_at"] is None
    trip(b, "x", 1)
    assert b.state("x") == "closed", "the run that opened it was cleared"
    assert rec.seen[-1] == ("x", "half_open", "closed")


def test_probe_failure_reopens_for_a_fresh_cooldown() -> None:
    b, clock, rec = make(failures=1, cooldown_s=10)
    trip(b, "x", 1)
    clock.now += 15
    assert b.allow("x")
    b.failure("x")
    assert b.state("x") == "open"
    assert b.snapshot()["x"]["retry_at"] == EPOCH + clock.now + 10
    clock.now += 9.9
    assert not b.allow("x")
    clock.now += 0.1
    assert b.allow("x")
    assert rec.seen == [
        ("x", "closed", "open"),
        ("x", "open", "half_open"),
        ("x", "half_open", "open"),
        ("x", "open", "half_open"),
    ]


def test_release_frees_a_probe_slot_and_nothing_else() -> None:
    b, clock, rec = make(failures=2, cooldown_s=10, probes=1)
    b.failure("x")
    b.release("x")
    assert b.snapshot()["x"]["consecutive_failures"] == 1, "release in closed changes nothing"
    b.failure("x")
    clock.now += 10
    assert b.allow("x") and not b.allow("x")
    b.release("x")
    assert b.state("x") == "half_open"
    assert b.allow("x"), "the released slot is free again"
    assert not b.allow("x")
    assert len(rec.seen) == 2


def test_late_reports_from_before_opening_are_ignored() -> None:
    b, clock, rec = make(failures=1, cooldown_s=10)
    trip(b, "x", 1)
    retry_at = b.snapshot()["x"]["retry_at"]
    clock.now += 5
    b.failure("x")  # a call admitted while closed, finishing now
    b.success("x")
    assert b.state("x") == "open" and b.snapshot()["x"]["retry_at"] == retry_at
    clock.now += 5
    assert b.allow("x")
    b.release("x")
    # Half-open with no probe outstanding: these belong to calls admitted before opening.
    b.failure("x")
    b.success("x")
    assert b.state("x") == "half_open"
    assert len(rec.seen) == 2


def test_disabled_allows_everything_and_tracks_nothing() -> None:
    b, _, rec = make(enabled=False, failures=1)
    for _ in range(50):
        assert b.allow("x")
        b.failure("x")
    assert b.state("x") == "closed"
    assert b.snapshot() == {}
    b.adopt("x", "open", until_unix=None)
    assert b.allow("x") and rec.seen == []


def test_configure_keeps_states_and_counts() -> None:
    b, clock, rec = make(failures=3, cooldown_s=10)
    trip(b, "x", 3)
    trip(b, "y", 2)
    b.configure(CircuitBreaker(failures=3, cooldown_s=60, min_calls=1000))
    assert b.state("x") == "open" and not b.allow("x")
    clock.now += 10
    assert b.allow("x"), "a cooldown already running keeps its end"
    b.failure("y")
    assert b.state("y") == "open", "the failure run survived the reload"
    # Disabling closes everything (metrics are told) and forgets it.
    b.configure(CircuitBreaker(enabled=False))
    assert rec.seen[-2:] == [("x", "half_open", "closed"), ("y", "open", "closed")]
    assert b.allow("y") and b.snapshot() == {}
    b.configure(CircuitBreaker(failures=1, min_calls=1000))
    trip(b, "y", 1)
    assert b.state("y") == "open"


def test_on_transition_only_on_transitions() -> None:
    b, clock, rec = make(failures=2, cooldown_s=10, probes=1)
    b.success("x")
    b.failure("x")
    assert rec.seen == []
    b.failure("x")
    for _ in range(5):
        b.allow("x")
    clock.now += 10
    assert b.allow("x")
    for _ in range(5):
        b.allow("x")
    b.success("x")
    b.success("x")
    assert rec.seen == [
        ("x", "closed", "open"),
        ("x", "open", "half_open"),
        ("x", "half_open", "closed"),
    ]


def test_snapshot_content_is_json_with_unix_times() -> None:
    b, clock, _ = make(failures=2, cooldown_s=10)
    b.success("ok")
    b.failure("bad")
    clock.now += 1
    b.failure("bad")
    snap = json.loads(json.dumps(b.snapshot()))
    assert snap["ok"] == {
        "state": "closed",
        "consecutive_failures": 0,
        "window_calls": 1,
        "window_failures": 0,
        "probes_in_flight": 0,
        "opened_at": None,
        "retry_at": None,
    }
    assert snap["bad"]["state"] == "open"
    assert snap["bad"]["window_calls"] == 2 and snap["bad"]["window_failures"] == 2
    assert snap["bad"]["opened_at"] == EPOCH + 1001
    assert snap["bad"]["retry_at"] == EPOCH + 1011
    assert "never-called" not in snap
    assert b.allow("never-called") and b.state("never-called") == "closed"


def test_adopt_tells_metrics_but_not_the_local_listener() -> None:
    b, clock, rec = make(failures=1, cooldown_s=10)
    local: list[Transition] = []
    b.listen_local(local.append)
    b.adopt("x", "open", until_unix=EPOCH + clock.now + 3)
    assert rec.seen == [("x", "closed", "open")] and local == []
    assert not b.allow("x")
    assert b.snapshot()["x"]["retry_at"] == EPOCH + clock.now + 3
    b.adopt("x", "open", until_unix=EPOCH + clock.now + 5)  # moves the end, no transition
    assert len(rec.seen) == 1
    clock.now += 5
    assert b.allow("x")
    # The cooldown ended here, so half-open is a local transition; the adopted ones are not.
    assert [(t.old, t.new) for t in local] == [("open", "half_open")]
    b.adopt("x", "closed", until_unix=None)
    assert b.state("x") == "closed" and len(local) == 1
    assert rec.seen[-1] == ("x", "half_open", "closed")
    b.adopt("unknown", "closed", until_unix=None)
    assert "unknown" not in b.snapshot()
    # Local transitions reach the listener, with the cooldown end for an open one.
    local.clear()
    trip(b, "x", 1)
    now = EPOCH + clock.now
    assert local == [Transition("x", "closed", "open", at_unix=now, until_unix=now + 10)]
    clock.now += 10
    assert b.allow("x")
    b.success("x")
    assert [(t.old, t.new, t.until_unix) for t in local[1:]] == [
        ("open", "half_open", None),
        ("half_open", "closed", None),
    ]
