"""The cost ledger: pricing, durable batched writes, rollups and spend queries."""
