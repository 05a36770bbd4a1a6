"""Fake upstream model servers (OpenAI, vLLM-style dLLM, Anthropic) for tests; see upstream.py."""
