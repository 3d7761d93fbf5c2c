"""Generation (t2s_fast/generate/): SQL extraction and the vLLM backend.

- SQL extraction from model replies: what a user's EX depends on when a model wraps its SQL.
- The vLLM backend, driven through a fake `vllm` module (tests/fake_vllm): one engine, one generate call
  over every (question, adapter) request, unique LoRA ids, a rank vLLM accepts; plus resume refusal rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from t2s_fast.errors import T2SError
from t2s_fast.generate.extract import extract, extract_sql

# --- generate_extract ---
CASES = [
    # (raw reply, expected SQL, changed)
    ("SELECT name FROM singer", "SELECT name FROM singer", False),
    ("  SELECT name FROM singer;\n", "SELECT name FROM singer", False),
    ("```sql\nSELECT count(*) FROM singer\n```", "SELECT count(*) FROM singer", True),
    ("```\nSELECT 1\n```\nThis returns one.", "SELECT 1", True),
    ("Here is the query:\n```sql\nSELECT a FROM t WHERE b = 'x;y'\n```", "SELECT a FROM t WHERE b = 'x;y'", True),
    ("Here is the query: SELECT a FROM t", "SELECT a FROM t", True),
    ("SELECT a FROM t;\nThis query selects a.", "SELECT a FROM t", True),
    ("SELECT a\nFROM t\n\nThis query selects a.", "SELECT a\nFROM t", True),
    ("WITH x AS (SELECT 1 AS v)\n\nSELECT v FROM x", "WITH x AS (SELECT 1 AS v)\n\nSELECT v FROM x", False),
    ("<think>\nthe user wants names\n</think>\n\nSELECT name FROM singer", "SELECT name FROM singer", True),
    ("<think>\n\n</think>\n\nSELECT name FROM singer", "SELECT name FROM singer", True),
    ("reasoning without an opening tag</think>SELECT 2", "SELECT 2", True),
    ("```sql\nSELECT 3", "SELECT 3", True),  # an unclosed fence (cut by max_new_tokens)
    ("SELECT 'a;b' FROM t; SELECT 2", "SELECT 'a;b' FROM t", True),
    ("select lower(name) from singer", "select lower(name) from singer", False),
    ("I cannot answer that.", "I cannot answer that.", False),
    ("", "", False),
    # Seen on the H200 with the real Qwen2.5-Coder-0.5B: a reply ending in a lone closing fence (the opening one
    # never written) used to extract as an empty prediction.
    ("SELECT count(*) FROM singer\n```", "SELECT count(*) FROM singer", True),
    ("SELECT count(*) FROM singer```", "SELECT count(*) FROM singer", True),
    ("SELECT name FROM singer\n```\nThis lists the names.\n```", "SELECT name FROM singer", True),
    # ... and a blank line inside a WITH query used to cut it off: inside parentheses, after a comma or a
    # keyword that needs more, and before the next common table expression, a blank line never ends the query.
    ("WITH a AS (\n  SELECT x FROM t\n\n  WHERE x > 1\n)\nSELECT * FROM a",
     "WITH a AS (\n  SELECT x FROM t\n\n  WHERE x > 1\n)\nSELECT * FROM a", False),
    ("WITH a AS (SELECT x FROM t),\n\nb AS (SELECT y FROM u)\nSELECT * FROM a JOIN b",
     "WITH a AS (SELECT x FROM t),\n\nb AS (SELECT y FROM u)\nSELECT * FROM a JOIN b", False),
    ("WITH a AS (SELECT x FROM t)\n\nb AS (SELECT y FROM u)\nSELECT * FROM a, b",
     "WITH a AS (SELECT x FROM t)\n\nb AS (SELECT y FROM u)\nSELECT * FROM a, b", False),
    ("SELECT name FROM singer WHERE\n\ncountry = 'France'", "SELECT name FROM singer WHERE\n\ncountry = 'France'",
     False),
    ("WITH a AS (SELECT 1 AS v)\nSELECT v FROM a\n\nThe CTE computes v.", "WITH a AS (SELECT 1 AS v)\nSELECT v FROM a",
     True),
]


@pytest.mark.parametrize("raw,sql,changed", CASES)
def test_extract_table(raw, sql, changed):
    got = extract(raw)
    assert got.sql == sql
    assert got.changed is changed
    assert extract_sql(raw) == sql


def test_extract_reports_the_rule_used():
    assert extract("SELECT 1").method == "plain"
    assert extract("```sql\nSELECT 1\n```").method == "fence"
    assert extract("The answer: SELECT 1").method == "keyword"
    assert extract("no sql here").method == "none"


# --- generate_vllm ---
def write_adapter(folder: Path, r: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": r, "lora_alpha": 2 * r, "peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(f"weights r={r}".encode())
    return str(folder)


def gold_by_question(spider1_dir: Path) -> dict[str, str]:
    return {q["question"].strip(): q["query"] for q in json.loads((spider1_dir / "dev.json").read_text())}


def make_responder(golds: dict[str, str]):
    """'good' answers the gold SQL in a code fence; 'bad' answers a wrong query; the base model an invalid one."""

    def respond(prompt: str, lora) -> str:
        question = re.search(r"Question: (.*?)<\|im_end\|>", prompt, re.S).group(1).strip()
        if lora is None:
            return "I think the answer is"
        if lora.lora_name == "good":
            return f"```sql\n{golds[question]}\n```"
        return "SELECT 1"

    return respond


def eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, **overrides):
    from t2s_fast.evaluate.config import EvalConfig

    adapters = {"good": write_adapter(tmp_path / "good", r=4), "bad": write_adapter(tmp_path / "bad", r=12)}
    kwargs = dict(base_model=str(qwen3_tokenizer_dir), tokenizer=str(qwen3_tokenizer_dir), adapters=adapters,
                  include_base=True, spider_dir=str(spider1_dir), dbs=["concert_singer"], limit=5,
                  out_dir=str(tmp_path / "run"), backend="vllm", max_new_tokens=64, workers=0,
                  repair="none")  # the greedy pass alone: these tests count its generate calls
    kwargs.update(overrides)
    return EvalConfig(**kwargs)


@pytest.mark.slow
def test_one_engine_one_generate_call_over_all_adapters(tmp_path, fake_vllm, spider1_dir, qwen3_tokenizer_dir):
    from t2s_fast.evaluate.harness import evaluate

    fake_vllm.RESPONDER = make_responder(gold_by_question(spider1_dir))
    report = evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir))

    assert len(fake_vllm.CALLS["engines"]) == 1
    engine = fake_vllm.CALLS["engines"][0]
    assert engine["enable_lora"] is True
    assert engine["max_loras"] == 2
    assert engine["max_lora_rank"] == 16  # largest rank 12, rounded up to a rank vLLM accepts
    assert len(fake_vllm.CALLS["generate"]) == 1
    call = fake_vllm.CALLS["generate"][0]
    assert len(call["prompts"]) == 5 * 3  # every (question, adapter) pair in the one call
    loras = [lr for lr in call["lora_request"] if lr is not None]
    assert {lr.lora_name for lr in loras} == {"good", "bad"}
    ids = {lr.lora_name: lr.lora_int_id for lr in loras}
    assert len(set(ids.values())) == 2 and all(i > 0 for i in ids.values())
    assert all(lr.lora_name == next(n for n, i in ids.items() if i == lr.lora_int_id) for lr in loras)
    assert sum(lr is None for lr in call["lora_request"]) == 5  # the base model: no LoRA
    assert all(sp.temperature == 0 and sp.max_tokens == 64 for sp in call["sampling_params"])
    # prompts come from the shared builder, rendered with thinking disabled
    assert all("<think>\n\n</think>" in p and "Dialect: SQLite" in p for p in call["prompts"])

    a = report["adapters"]
    assert a["good"]["ex"] == 1.0 and a["good"]["extraction"]["changed"] == 5
    assert a["bad"]["ex"] < 1.0
    assert a["__base__"]["ex"] == 0.0
    assert report["disagreements"]["count"] >= 1
    row = report["disagreements"]["rows"][0]
    assert row["results"]["good"]["match"] is True and row["results"]["__base__"]["match"] is False
    for name in ("report.json", "report.md", "report.html", "predictions.jsonl", "run_settings.json"):
        assert (tmp_path / "run" / name).is_file()


@pytest.mark.slow
def test_vllm_stops_at_the_tokens_the_hf_engine_and_infer_stop_at(tmp_path, fake_vllm, spider1_dir,
                                                                   qwen3_tokenizer_dir, qwen3_tokenizer):
    """One stop rule (generate/base.stop_token_ids) for every engine: vLLM is handed the ids HFGenerator (and so
    infer) stops at, end of turn first among them."""
    from t2s_fast.evaluate.harness import evaluate
    from t2s_fast.generate.base import stop_token_ids

    evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, limit=1))
    expected = stop_token_ids(qwen3_tokenizer)
    assert qwen3_tokenizer.convert_tokens_to_ids("<|im_end|>") in expected
    assert all(sp.stop_token_ids == expected for sp in fake_vllm.CALLS["generate"][0]["sampling_params"])


@pytest.mark.slow
def test_rerun_generates_nothing_and_changed_settings_refuse(tmp_path, fake_vllm, spider1_dir, qwen3_tokenizer_dir):
    from t2s_fast.evaluate.harness import evaluate

    fake_vllm.RESPONDER = make_responder(gold_by_question(spider1_dir))
    first = evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir))
    again = evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir))
    assert len(fake_vllm.CALLS["generate"]) == 1  # everything was already predicted: no engine, no call
    assert len(fake_vllm.CALLS["engines"]) == 1
    assert again["adapters"] == first["adapters"]
    lines = (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(x)["key"] for x in lines}) == 15

    with pytest.raises(T2SError, match="max_new_tokens"):
        evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, max_new_tokens=32))
    with pytest.raises(T2SError, match="sample_values"):
        evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, sample_values=0))
    # --force starts over with the new settings
    evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, max_new_tokens=32, force=True))
    assert len(fake_vllm.CALLS["generate"]) == 2
    assert fake_vllm.CALLS["generate"][-1]["sampling_params"][0].max_tokens == 32


@pytest.mark.slow
def test_enforce_eager_and_compile_cache_reach_the_engine(tmp_path, fake_vllm, spider1_dir, qwen3_tokenizer_dir,
                                                           monkeypatch):
    """--enforce-eager becomes LLM(enforce_eager=True); --vllm-cache-dir becomes VLLM_CACHE_ROOT (vLLM's cache
    root, torch_compile_cache/ inside it) before the engine is built. The fake, like vLLM's EngineArgs,
    refuses keyword arguments vLLM does not have."""
    from t2s_fast.evaluate.harness import evaluate

    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "not-this-one"))  # restored (unset) after the test
    seen = {}

    def respond(prompt, lora):
        seen["cache_root"] = __import__("os").environ.get("VLLM_CACHE_ROOT")
        return "SELECT 1"

    fake_vllm.RESPONDER = respond
    cache = tmp_path / "vllm-cache"
    evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, limit=1, enforce_eager=True,
                         vllm_cache_dir=str(cache)))
    assert fake_vllm.CALLS["engines"][0]["enforce_eager"] is True
    assert seen["cache_root"] == str(cache.resolve()) and cache.is_dir()
    evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, limit=1, out_dir=str(tmp_path / "run2")))
    assert fake_vllm.CALLS["engines"][1]["enforce_eager"] is False  # vLLM's default: compile + CUDA graphs
    with pytest.raises(TypeError, match="unexpected keyword argument 'enforce_eagerly'"):
        fake_vllm.LLM(model="m", enforce_eagerly=True)


def test_lora_rank_rounding():
    from t2s_fast.generate.vllm import round_lora_rank

    assert [round_lora_rank(r) for r in (1, 4, 8, 9, 16, 17, 64, 200, 300, 512)] == [8, 8, 8, 16, 16, 32, 64, 256, 320,
                                                                                     512]
    with pytest.raises(T2SError):
        round_lora_rank(1024)


@pytest.mark.slow
def test_self_consistency_majority_vote(tmp_path, fake_vllm, spider1_dir, qwen3_tokenizer_dir):
    """With K samples, the answer is the SQL whose result most samples agree on; invalid SQL does not vote."""
    from t2s_fast.evaluate.harness import evaluate

    golds = gold_by_question(spider1_dir)
    counter = {"n": 0}

    def respond(prompt, lora):
        question = re.search(r"Question: (.*?)<\|im_end\|>", prompt, re.S).group(1).strip()
        counter["n"] += 1
        # per question (3 samples in order): invalid, gold, gold  -> the vote must pick the gold result
        return ["SELEC nonsense", golds[question], golds[question]][(counter["n"] - 1) % 3]

    fake_vllm.RESPONDER = respond
    cfg = eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, adapters={}, include_base=True, limit=3,
                      n_samples=3, temperature=0.7)
    # requests are ordered by question, then sample, so every question sees [invalid, gold, gold]
    report = evaluate(cfg)
    call = fake_vllm.CALLS["generate"][0]
    assert len(call["prompts"]) == 9
    assert len({sp.seed for sp in call["sampling_params"]}) == 9  # one seed per sample
    base = report["adapters"]["__base__"]
    assert base["ex"] == 1.0
    assert base["self_consistency"]["mean_valid_samples"] == 2.0


def test_backend_selection(monkeypatch):
    from t2s_fast.generate import base

    monkeypatch.setattr(base, "vllm_available", lambda: False)
    assert base.select_backend("auto") == "hf"
    with pytest.raises(T2SError, match="vllm"):
        base.select_backend("vllm")
    monkeypatch.setattr(base, "vllm_available", lambda: True)
    monkeypatch.setattr(base, "cuda_available", lambda: True)
    assert base.select_backend("auto") == "vllm"
    with pytest.raises(T2SError):
        base.select_backend("tgi")


def test_spider2_lite_states_what_cannot_be_executed(tmp_path, fake_vllm, spider2_dir, qwen3_tokenizer_dir):
    """Spider2-lite: predictions for every question; those whose databases are not local are listed as such."""
    from t2s_fast.evaluate.config import EvalConfig
    from t2s_fast.evaluate.harness import evaluate

    cfg = EvalConfig(base_model=str(qwen3_tokenizer_dir), adapters={"a": write_adapter(tmp_path / "a", r=8)},
                     suite="spider2-lite", spider_dir=str(spider2_dir), dbs=["E_commerce"], limit=2,
                     out_dir=str(tmp_path / "run"), backend="vllm", workers=0)
    report = evaluate(cfg)
    assert len(fake_vllm.CALLS["generate"][0]["prompts"]) == 2
    assert all("Dialect: SQLite" in p for p in fake_vllm.CALLS["generate"][0]["prompts"])
    ne = report["questions"]["not_executable"]
    assert ne["count"] == 2 and any("SQLite database" in r for r in ne["reasons"])
    assert report["adapters"]["a"]["ex"] is None and report["adapters"]["a"]["not_executable"] == 2
    assert "Not executable here: 2 questions" in (tmp_path / "run" / "report.html").read_text()
    assert "Not executable here: 2 questions" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.slow
def test_engine_starts_with_vllms_own_sampler_when_flashinfer_is_absent(tmp_path, fake_vllm, monkeypatch,
                                                                         spider1_dir, qwen3_tokenizer_dir):
    """vLLM 0.26 without flashinfer fails at engine start unless VLLM_USE_FLASHINFER_SAMPLER=0 is set before the
    engine (and its child process) starts; a value the user chose is left alone."""
    from t2s_fast.evaluate.harness import evaluate

    real_find_spec = __import__("importlib.util").util.find_spec
    monkeypatch.setattr("importlib.util.find_spec",
                        lambda name, *a: None if name == "flashinfer" else real_find_spec(name, *a))
    monkeypatch.delenv("VLLM_USE_FLASHINFER_SAMPLER", raising=False)
    monkeypatch.delenv("VLLM_WORKER_MULTIPROC_METHOD", raising=False)
    evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, limit=1))
    assert fake_vllm.CALLS["env"][-1].get("VLLM_USE_FLASHINFER_SAMPLER") == "0"
    # the engine core is spawned: a forked one cannot use CUDA once the parent touched it (seen on the H200)
    assert fake_vllm.CALLS["env"][-1].get("VLLM_WORKER_MULTIPROC_METHOD") == "spawn"

    monkeypatch.setenv("VLLM_USE_FLASHINFER_SAMPLER", "1")
    evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, limit=1, out_dir=str(tmp_path / "run2")))
    assert fake_vllm.CALLS["env"][-1]["VLLM_USE_FLASHINFER_SAMPLER"] == "1"


@pytest.mark.slow
def test_repetition_guard_reaches_vllm_and_the_report_counts_how_answers_ended(
        tmp_path, fake_vllm, spider1_dir, qwen3_tokenizer_dir):
    from t2s_fast.evaluate.harness import evaluate

    golds = gold_by_question(spider1_dir)

    def respond(prompt, lora):
        question = re.search(r"Question: (.*?)<\|im_end\|>", prompt, re.S).group(1).strip()
        if lora is None:
            return "LOOP " + "AND x = 1 " * 200  # a runaway the guard ends
        return golds[question] if lora.lora_name == "good" else "SELECT " + "a, " * 200  # runs to the limit

    fake_vllm.RESPONDER = respond
    report = evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, limit=3))
    params = fake_vllm.CALLS["generate"][0]["sampling_params"]
    assert all(sp.repetition_detection is not None and sp.repetition_detection.min_count == 4 for sp in params)
    a = report["adapters"]
    assert a["__base__"]["finish"] == {"repetition": 3}
    assert a["bad"]["finish"] == {"length": 3} and a["good"]["finish"] == {"stop": 3}
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| model | length | repetition | stop |" in md
    assert "one vLLM engine for all 3 variant(s)" in md and "hot-swapped per request" in md
    preds = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert {p["finish"] for p in preds} == {"stop", "length", "repetition"}

    evaluate(eval_config(tmp_path, spider1_dir, qwen3_tokenizer_dir, limit=3, repetition_guard=False,
                         out_dir=str(tmp_path / "off")))
    assert all(sp.repetition_detection is None for sp in fake_vllm.CALLS["generate"][-1]["sampling_params"])


def test_tail_repeats_matches_vllms_rule():
    from t2s_fast.generate.base import RepetitionGuard, tail_repeats

    guard = RepetitionGuard(min_pattern=2, max_pattern=8, min_count=4)
    assert tail_repeats([9, 1, 2, 1, 2, 1, 2, 1, 2], guard)  # (1, 2) four times at the end
    assert not tail_repeats([9, 1, 2, 1, 2, 1, 2], guard)  # three times only
    assert not tail_repeats([1, 2, 1, 2, 1, 2, 1, 2, 9], guard)  # the loop must be at the tail
    assert tail_repeats([0] + [5, 6, 7] * 4, guard)
    assert not tail_repeats([7, 7, 7, 7, 7, 7, 7], RepetitionGuard(min_pattern=2, max_pattern=8, min_count=4))
    assert tail_repeats([7] * 8, guard)  # (7, 7) four times


def test_hf_repetition_stop_ends_only_looping_rows():
    import torch

    from t2s_fast.generate.base import RepetitionGuard
    from t2s_fast.generate.hf import _RepetitionStop

    stop = _RepetitionStop(RepetitionGuard(min_pattern=2, max_pattern=4, min_count=3), prompt_len=2)
    ids = torch.tensor([[100, 101, 1, 2, 1, 2, 1, 2], [100, 101, 1, 2, 3, 4, 5, 6]])
    assert stop(ids, None).tolist() == [True, False]
    assert stop.stopped_at == {0: 6}  # generated tokens when the loop was seen
