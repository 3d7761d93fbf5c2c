"""SQL execution and execution-accuracy scoring: safe SQLite executor and worker pool (``executor``),
official result-comparison rules (``compare``), Spider hardness (``hardness``), the scorer (``scorer``),
Spider 2.0 helpers (``spider2``) and the ``t2s-fast score`` command (``cli``)."""
