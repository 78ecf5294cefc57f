"""Training: the engine, the worker-side runtime, networks, losses, selection and evaluation."""
