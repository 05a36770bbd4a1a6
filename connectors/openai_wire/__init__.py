"""OpenAI's chat-completions wire, shared by every connector that speaks it natively."""
