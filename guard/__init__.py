"""forget-guard: an inference-time unlearning guardrail proxy for OpenAI-compatible LLM servers."""

__version__ = "0.1.0"
