"""Ingress dialects: one module per client API (OpenAI chat completions, Anthropic Messages),
each parsing its body into the internal `ChatRequest` and rendering completions, streams and
errors in its own shape; `handler.ChatHandler` serves any of them the same way."""
