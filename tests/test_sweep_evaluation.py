"""The sweep's evaluation (sweep/evaluation.py) on the real engine path with a fake vllm underneath: every
candidate on the held-out set, the choice, and the chosen one's final report on Spider dev (greedy, then maj@K)
all go through ONE engine; 'good' adapters answer the gold SQL, so the choice and every EX are known."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_eval_repair import GOLD, QUESTIONS, suite  # noqa: F401 - `suite` is a fixture
from test_generate_vllm import gold_by_question, write_adapter

from t2s_fast.sweep.config import SweepConfig, expand_variants
from t2s_fast.sweep.evaluation import SweepEvaluation, evaluate_and_choose


def _finished_run(folder: Path, r: int) -> str:
    """What the evaluation reads of a training run: its adapter and its per-step dollars."""
    (folder).mkdir(parents=True)
    (folder / "train_log.jsonl").write_text(json.dumps({"step": 2, "loss": 1.0, "cost_usd": 0.01}) + "\n")
    return write_adapter(folder / "adapter", r=r)


@pytest.mark.slow
def test_heldout_choice_and_final_share_one_vllm_engine(suite, tmp_path, fake_vllm, spider1_dir, qwen3_tokenizer_dir):
    golds = {**gold_by_question(spider1_dir), **{QUESTIONS[q]: GOLD[q] for q in QUESTIONS}}

    def respond(prompt: str, lora) -> str:
        question = re.search(r"Question: (.*?)<\|im_end\|>", prompt, re.S).group(1).strip()
        good = lora is not None and lora.lora_name.startswith("good")
        return f"```sql\n{golds[question]}\n```" if good else "SELECT 1"

    fake_vllm.RESPONDER = respond
    qfile, root = suite
    cfg = SweepConfig(out_dir=str(tmp_path / "sweep"), max_cost_usd=1.0, source="sweep.json",
                      train={"model_name": str(qwen3_tokenizer_dir)}, variants=[{"name": "bad"}, {"name": "good"}],
                      heldout={"suite": "jsonl", "questions": str(qfile), "db_root": str(root)},
                      eval={"backend": "vllm", "workers": 0},
                      final={"spider_dir": str(spider1_dir), "dbs": ["concert_singer"], "limit": 3, "n_samples": 2,
                             "temperature": 0.7}).validate()
    adapters = {f"{n}@final": _finished_run(tmp_path / "sweep" / "runs" / n, r) for n, r in (("bad", 8), ("good", 4))}
    result = evaluate_and_choose(SweepEvaluation(cfg, expand_variants(cfg), adapters))
    assert len(fake_vllm.CALLS["engines"]) == 1  # held-out, greedy final and maj@2 final: one engine
    assert [(c["name"], c["ex"]) for c in result["candidates"]] == [("bad@final", 0.0), ("good@final", 1.0)]
    assert result["chosen"]["name"] == "good@final" and result["heldout"]["suite"] == "jsonl"
    assert [(k, f["suite"], f["split"], f["ex"], f["n"]) for k, f in result["final"].items()] == [
        ("greedy", "spider1", "dev", 1.0, 3), ("maj@2", "spider1", "dev", 1.0, 3)]
    # the chosen one against the baseline (the first variant), question by question, held-out and final
    paired = result["paired"]
    assert (paired["baseline"], paired["chosen"]) == ("bad@final", "good@final")
    assert (paired["heldout"]["n"], paired["heldout"]["wrong_to_right"], paired["heldout"]["diff"]) == (4, 4, 1.0)
    assert paired["heldout"]["noise"] is False
    for label in ("greedy", "maj@2"):
        assert (paired["final"][label]["n"], paired["final"][label]["diff"]) == (3, 1.0)
        assert paired["final"][label]["file_a"].endswith("scored.jsonl.gz")
    from t2s_fast.sweep.report import _paired

    md = "\n".join(_paired({"paired": paired}))
    assert "## Chosen against the baseline (bad@final)" in md
    assert "| held-out | bad@final | good@final | 4 | 0.0% | 100.0% | +100.0 |" in md
    assert "| final maj@2 | bad@final | good@final | 3 |" in md
