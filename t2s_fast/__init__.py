"""t2s-fast: turn an open LLM into a text-to-SQL model on one rented GPU, and prove how good it is."""

__version__ = "0.1.0"
