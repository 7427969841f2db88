"""LLM voice cloning: a Qwen3 whose vocabulary holds the speech tokens (seed section 4.1.3)."""
