"""Spider 1.0 / 2.0 files on disk -> chat-format JSONL for stage-1 and stage-2 training (`t2s-fast prepare`)."""
