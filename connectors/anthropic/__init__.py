"""Anthropic's Messages API, spoken natively: `translate` (pure) and `connector` (HTTP)."""
