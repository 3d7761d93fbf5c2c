"""Projected wall time and dollars of stage 1 and stage 2 at the runbook's settings.

The runbook trains stage 1 on stage1_train.jsonl and stage 2 on stage2_mixed_train.jsonl, 2 epochs each
(`t2s-fast train` defaults), at --max-seq-length 3072; examples longer than that are dropped, as training
does. Time = tokens trained (non-padding, x epochs) / measured trained tokens/s. It is the training loop only:
add model loading (about a minute) and any evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUNBOOK_EPOCHS = 2.0
STAGE_FILES = {"stage1": "stage1_train.jsonl", "stage2": "stage2_mixed_train.jsonl"}


@dataclass
class StageData:
    name: str
    path: str
    examples: int
    tokens: int  # one epoch, non-padding
    lengths: list[int]
    dropped_too_long: int = 0

    def summary(self) -> dict:
        return {"name": self.name, "path": self.path, "examples": self.examples, "tokens_per_epoch": self.tokens,
                "mean_tokens": round(self.tokens / max(1, self.examples), 1),
                "max_tokens": max(self.lengths, default=0), "dropped_too_long": self.dropped_too_long}


def stage_data(name: str, path: str | Path, tokenizer, max_seq_length: int) -> StageData:
    """Token lengths of a prepared file, tokenized exactly as training does (t2s_fast.train.data)."""
    from t2s_fast.train.data import load_tokenized

    data = load_tokenized(path, tokenizer, max_seq_length, what=name)
    return StageData(name=name, path=str(path), examples=data.n_examples, tokens=data.total_tokens,
                     lengths=list(data.lengths), dropped_too_long=data.n_dropped_too_long)


def find_stage_files(stage1_file: str | Path, stage2_file: str | Path | None = None) -> dict[str, Path]:
    """stage1 = the given file; stage2 = the given one, else stage2_mixed_train.jsonl beside stage 1."""
    files = {"stage1": Path(stage1_file)}
    s2 = Path(stage2_file) if stage2_file else Path(stage1_file).with_name(STAGE_FILES["stage2"])
    if s2.is_file():
        files["stage2"] = s2
    return files


def project(tokens_per_s: float | None, tokens_per_epoch: int, *, gpu_hourly_usd: float,
            epochs: float = RUNBOOK_EPOCHS) -> dict:
    tokens = int(tokens_per_epoch * epochs)
    if not tokens_per_s:
        return {"tokens": tokens, "epochs": epochs, "hours": None, "usd": None}
    hours = tokens / tokens_per_s / 3600.0
    # Significant figures, not fixed decimals: a small projection (a test, a tiny data set) must not round to 0.
    return {"tokens": tokens, "epochs": epochs, "hours": float(f"{hours:.4g}"),
            "usd": float(f"{hours * gpu_hourly_usd:.4g}")}


def project_stages(tokens_per_s: float | None, stages: dict[str, StageData], *, gpu_hourly_usd: float,
                   epochs: float = RUNBOOK_EPOCHS) -> dict:
    out = {name: project(tokens_per_s, sd.tokens, gpu_hourly_usd=gpu_hourly_usd, epochs=epochs)
           for name, sd in stages.items()}
    if out and all(v["hours"] is not None for v in out.values()):
        out["total"] = {"hours": float(f"{sum(v['hours'] for v in out.values()):.4g}"),
                        "usd": float(f"{sum(v['usd'] for v in out.values()):.4g}")}
    return out
