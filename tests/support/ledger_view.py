"""Read what the running app's ledger stored (after flushing its batched writer)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from gateway.ledger.tables import attempts, requests


def flush(client: Any) -> None:
    client.portal.call(client.app.state.ledger.flush)


def settle(client: Any) -> None:
    """Wait for everything the app queued off the request path: idempotency store writes,
    budget settlements, then ledger rows."""
    services = client.app.state.services
    client.portal.call(services.idempotency.flush)
    client.portal.call(services.gate.flush)
    client.portal.call(services.ledger.flush)


def request_rows(client: Any, request_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The `requests` row and its `attempts` rows (in attempt order) for one request."""
    flush(client)
    engine = client.app.state.ledger.engine
    with engine.connect() as conn:
        req = conn.execute(sa.select(requests).where(requests.c.request_id == request_id)).one()
        atts = conn.execute(
            sa.select(attempts)
            .where(attempts.c.request_id == request_id)
            .order_by(attempts.c.attempt)
        ).all()
    return dict(req._mapping), [dict(a._mapping) for a in atts]
