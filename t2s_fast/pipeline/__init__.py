"""`t2s-fast run`: the whole runbook (prepare, stage 1, stage 2, RL, the choice on held-out data, Spider dev,
merge, report) as one resumable, unattended command under one dollar cap; `t2s-fast status RUN_DIR` to come
back to it."""
