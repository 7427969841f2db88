"""Training engine shared by every stage (accelerate, lhotse dynamic batching, exact resume)."""
