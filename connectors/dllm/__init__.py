"""Diffusion-LLM servers: vLLM, SGLang, Inception Mercury (and Mercury Decide), dlmserve,
mistral.rs, ollada and plain OpenAI-compatible ones (docs/engines.md)."""
