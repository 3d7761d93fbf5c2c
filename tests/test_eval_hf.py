"""End to end on a CPU: the HF/PEFT backend evaluates a tiny Qwen3 with two LoRA adapters plus the base model
on a Spider dev subset, writes all three reports, and a run killed midway resumes to the same report."""

from __future__ import annotations

import json

import pytest

from t2s_fast.cli import main

DBS = ["course_teach", "singer"]


@pytest.fixture(scope="module")
def two_adapters(tiny_qwen3_dir, tmp_path_factory) -> dict[str, str]:
    """Two random LoRA adapters (init_lora_weights=False: they change the output, unlike PEFT's B=0 default)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    out = {}
    for i, (name, r) in enumerate([("alpha", 4), ("beta", 8)]):
        torch.manual_seed(100 + i)
        model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen3_dir))
        peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj",
                                                                                             "down_proj"],
                                                      init_lora_weights=False, task_type="CAUSAL_LM"))
        peft_model.save_pretrained(str(root / name))
        out[name] = str(root / name)
    return out


def eval_args(tiny_qwen3_dir, adapters, spider1_dir, out_dir) -> list[str]:
    args = ["eval", "--base-model", str(tiny_qwen3_dir), "--include-base", "--spider-dir", str(spider1_dir),
            "--limit", "6", "--max-new-tokens", "12", "--batch-size", "4", "--backend", "hf", "--workers", "0",
            "--repair", "none", "--out-dir", str(out_dir)]  # the greedy pass: its requests are counted
    for name, path in adapters.items():
        args += ["--adapter", f"{name}={path}"]
    for db in DBS:
        args += ["--db", db]
    return args


def without_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "timing"}


@pytest.mark.slow
def test_hf_end_to_end_reports_and_resume(tmp_path, tiny_qwen3_dir, two_adapters, spider1_dir):
    from t2s_fast.evaluate.config import EvalConfig
    from t2s_fast.evaluate.harness import evaluate

    # 1) uninterrupted, through the CLI
    run_a = tmp_path / "a"
    main(eval_args(tiny_qwen3_dir, two_adapters, spider1_dir, run_a))
    report = json.loads((run_a / "report.json").read_text())
    for name in ("report.md", "report.html", "predictions.jsonl", "scored.jsonl", "run_settings.json"):
        assert (run_a / name).stat().st_size > 0
    assert list(report["adapters"]) == ["__base__", "alpha", "beta"]
    scored = [json.loads(x) for x in (run_a / "scored.jsonl").read_text().splitlines()]
    for name, a in report["adapters"].items():
        mine = [r for r in scored if r["adapter"] == name]
        assert a["n"] == len(mine) == 6
        # the report's figures are the scored lines' figures: EX = matches / n, errors counted by kind
        assert a["correct"] == sum(1 for r in mine if r["exec_match"])
        assert a["ex"] == pytest.approx(a["correct"] / a["n"])
        assert sum(a["errors"].values()) == sum(1 for r in mine if r.get("error_kind"))
        assert set(a["by_database"]) <= set(DBS)
        assert a["generated_tokens"] == sum(r["n_tokens"] for r in mine) > 0
    assert report["timing"]["tokens_per_s"] > 0
    assert report["settings"]["timeout_s"] == 30.0 and "DISTINCT" in report["settings"]["distinct_handling"]
    html = (run_a / "report.html").read_text()
    assert "data:image/png;base64," in html and "<script" not in html and "<link" not in html  # self-contained
    # the adapters are really applied: their answers differ from the base model's
    preds = [json.loads(x) for x in (run_a / "predictions.jsonl").read_text().splitlines()]
    by = {(p["adapter"], p["qid"]): p["raw"] for p in preds}
    qids = {p["qid"] for p in preds}
    assert any(by[("alpha", q)] != by[("__base__", q)] for q in qids)
    assert any(by[("beta", q)] != by[("alpha", q)] for q in qids)
    # the HF backend gets its requests adapter by adapter (single-adapter batches, not PEFT's mixed path)
    assert [p["adapter"] for p in preds] == ["__base__"] * 6 + ["alpha"] * 6 + ["beta"] * 6

    # 2) killed after two batches, then re-run: same report, no duplicate predictions
    run_b = tmp_path / "b"

    class Killed(RuntimeError):
        pass

    def kill_after_two(batch_index, n_done):
        if batch_index == 1:
            raise Killed()

    cfg = dict(base_model=str(tiny_qwen3_dir), adapters=two_adapters, include_base=True, spider_dir=str(spider1_dir),
               dbs=DBS, limit=6, max_new_tokens=12, batch_size=4, backend="hf", workers=0, repair="none",
               out_dir=str(run_b))
    with pytest.raises(Killed):
        evaluate(EvalConfig(**cfg), on_batch=kill_after_two)
    assert len((run_b / "predictions.jsonl").read_text().splitlines()) == 8
    assert not (run_b / "report.json").exists()
    resumed = evaluate(EvalConfig(**cfg))
    assert resumed["timing"]["this_session"]["resumed"] == 8
    assert resumed["timing"]["this_session"]["requests"] == 18 - 8
    keys = [json.loads(x)["key"] for x in (run_b / "predictions.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 18
    assert without_timing(json.loads((run_b / "report.json").read_text())) == without_timing(report)

    # 3) `t2s-fast report` re-renders both runs and compares them
    main(["report", str(run_a), str(run_b), "--out", str(tmp_path / "cmp")])
    cmp_md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert cmp_md.count("| alpha |") == 2
    assert "data:image/png;base64," in (tmp_path / "cmp" / "comparison.html").read_text()


def test_bad_adapter_flag_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--base-model", "x", "--adapter", "no-equals-sign", "--spider-dir", str(tmp_path),
              "--out-dir", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "NAME=PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--base-model", "x", "--adapter", f"a={tmp_path}", "--spider-dir", str(tmp_path),
              "--out-dir", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "adapter_config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_single_adapter_batches_answer_like_mixed_batches(tiny_qwen3_dir, two_adapters, qwen3_tokenizer_dir):
    """A batch of one adapter (adapter made active, or all adapters disabled for the base) gives each request
    the same greedy answer as a batch mixing adapters row by row through PEFT's adapter_names."""
    from t2s_fast.generate.base import BASE_ADAPTER, GenRequest, GenSettings
    from t2s_fast.generate.hf import HFGenerator

    gen = HFGenerator(base_model=str(tiny_qwen3_dir), adapters=two_adapters, tokenizer_dir=str(qwen3_tokenizer_dir),
                      batch_size=3, device="cpu")
    prompts = [f"How many rows are in table t{i}?" for i in range(3)]
    lengths = {len(gen.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts}
    assert len(lengths) == 1  # equal lengths: no padding difference between the two batchings
    names = [BASE_ADAPTER, "alpha", "beta"]
    mixed = [GenRequest(key=f"{a}|q{i}|0", adapter=a, prompt=p, seed=0) for i, p in enumerate(prompts) for a in names]
    grouped = sorted(mixed, key=lambda r: names.index(r.adapter))
    settings = GenSettings(max_new_tokens=8)
    mixed_out = {r.key: r.text for r in gen.generate(mixed, settings)}  # every batch holds all three adapters
    grouped_out = {r.key: r.text for r in gen.generate(grouped, settings)}  # every batch holds one adapter
    assert grouped_out == mixed_out
    assert len({mixed_out[f"{a}|q0|0"] for a in names}) > 1  # the adapters change the answer
    gen.close()
