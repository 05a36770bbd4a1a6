"""OpenAI-compatible diffusion-LLM servers (vLLM, SGLang, ollada, Mercury, plain OpenAI)."""
