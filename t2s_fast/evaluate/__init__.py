"""Batch evaluation: generate SQL for many (question, adapter) pairs, score by execution, write reports."""
