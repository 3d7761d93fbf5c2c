"""`t2s-fast eval` (t2s_fast/evaluate/): backends, data-parallel runs, the vote, question-matched
values, the set chosen on, the report.

- End to end on a CPU: the HF/PEFT backend evaluates a tiny Qwen3 with two LoRA adapters plus the base model
  on a Spider dev subset, writes all three reports, and a run killed midway resumes to the same report.
- Multi-GPU evaluation, on a CPU: the HF backend sharded over two gloo processes (torchrun) merges into the
  same predictions.jsonl as one process, with no duplicate and no loss, and resumes from partial shards; the
  vLLM backend passes --tensor-parallel-size to the engine and runs --data-parallel-size engines in pinned
  processes (fake vllm).
- Self-consistency voting executes every sample in one executor pool, prepared the way the scorer prepares a
  prediction, so the vote and the score agree on which results are equal.
- Question-matched values (--question-values): the matching, its caps, that the lever off leaves prompts
  byte-identical, and that prepare (training), eval and infer build the same prompt with it on.
- Spider dev recognised by its content: a renamed copy of dev.json, as a spider1 split or a questions file, is
  refused (exit 2) as a set to choose on, whatever it is called; the shipped fingerprint is dev's.
- Report cosmetics and one vocabulary: bar labels keep their decimal, a one-database chart shows its bars
  whole, the title names what was evaluated, decoding does not warn about space clean-up, and every command
  takes the same dtype names.
- The HTML report opens in headless Chromium and its plots render (skipped where Chromium is absent)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace

import pytest

from t2s_fast.cli import main
from t2s_fast.errors import T2SError
from t2s_fast.evaluate import report
from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.generation import build_prompts, question_messages
from t2s_fast.evaluate.questions import Question
from t2s_fast.evaluate.report import render_html
from t2s_fast.evaluate.scoring import choose_by_vote, execute_question_samples
from t2s_fast.schema import read_sqlite_schema, render_schema
from t2s_fast.schema_values import MAX_VALUE_CHARS, QuestionValueMatcher, make_matcher, match_values, read_text_values

# --- eval_hf ---
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


# --- eval_distributed ---
def _eval_args(model, spider1_dir, out):
    # batch size 1: no padding, so a question's greedy answer cannot depend on which rank got it; repair none:
    # the greedy pass is what is sharded (a repair pass runs on rank 0 alone)
    return ["eval", "--backend", "hf", "--base-model", str(model), "--spider-dir", str(spider1_dir),
            "--db", "concert_singer", "--limit", "6", "--max-new-tokens", "6", "--batch-size", "1",
            "--sample-values", "0", "--include-base", "--repair", "none", "--out-dir", str(out)]


def _run(cmd, log: Path, nproc: int = 1):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", "t2s_fast", *cmd]
    else:
        cmd = [sys.executable, "-m", "t2s_fast", *cmd]
    with log.open("a") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=400)
    assert proc.returncode == 0, log.read_text()[-4000:]


def _preds(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_sharded_hf_eval_merges_like_one_process_and_resumes(tmp_path, tiny_qwen3_dir, spider1_dir):
    one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
    _run(_eval_args(tiny_qwen3_dir, spider1_dir, one), tmp_path / "one.log")
    _run(_eval_args(tiny_qwen3_dir, spider1_dir, two), tmp_path / "two.log", nproc=2)
    p1, p2 = _preds(one), _preds(two)
    keys = [p["key"] for p in p2]
    assert len(keys) == len(set(keys)) == 6  # no duplicate, no loss
    assert {p["key"]: p["raw"] for p in p2} == {p["key"]: p["raw"] for p in p1}
    assert not list(two.glob("*.rank*.jsonl"))  # shards folded in and removed
    assert json.loads((two / "report.json").read_text())["adapters"].keys() == \
        json.loads((one / "report.json").read_text())["adapters"].keys()
    # two processes each generated some of the requests
    assert sorted({t["rank"] for t in map(json.loads, (two / "timings.jsonl").read_text().splitlines())}) == [0, 1]

    # cut off mid-way: one prediction merged, two left in rank 1's shard, the rest missing
    resumed.mkdir()
    shutil.copy(two / "run_settings.json", resumed / "run_settings.json")
    (resumed / "predictions.jsonl").write_text(json.dumps(p2[0]) + "\n")
    (resumed / "predictions.rank1.jsonl").write_text("".join(json.dumps(p) + "\n" for p in p2[1:3]))
    _run(_eval_args(tiny_qwen3_dir, spider1_dir, resumed), tmp_path / "resumed.log", nproc=2)
    p3 = _preds(resumed)
    assert sorted(p["key"] for p in p3) == sorted(keys)
    assert {p["key"]: p["raw"] for p in p3} == {p["key"]: p["raw"] for p in p2}
    assert not list(resumed.glob("*.rank*.jsonl"))
    report = json.loads((resumed / "report.json").read_text())
    assert report["timing"]["this_session"]["resumed"] == 3




@pytest.mark.slow
def test_vllm_tensor_parallel_size_reaches_the_engine(fake_vllm, qwen3_tokenizer_dir):
    from t2s_fast.generate.engines import make_generator

    make_generator("vllm", base_model="some/model", adapters={}, tokenizer_dir=str(qwen3_tokenizer_dir),
                   tensor_parallel_size=2)
    assert fake_vllm.CALLS["engines"][-1]["tensor_parallel_size"] == 2


@pytest.mark.slow
def test_vllm_data_parallel_engines_are_pinned_and_answer_in_order(fake_vllm, qwen3_tokenizer_dir, monkeypatch):
    from t2s_fast.errors import T2SError
    from t2s_fast.generate.base import GenRequest, GenSettings
    from t2s_fast.generate.engines import make_generator

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    gen = make_generator("vllm", base_model="some/model", adapters={}, tokenizer_dir=str(qwen3_tokenizer_dir),
                         tensor_parallel_size=2, data_parallel_size=2)
    try:
        assert [e["cuda_visible_devices"] for e in gen.engines] == ["4,5", "6,7"]
        assert len({e["pid"] for e in gen.engines}) == 2
        reqs = [GenRequest(key=f"__base__|q{i}|0", adapter="__base__", prompt=f"p{i}") for i in range(5)]
        out = gen.generate(reqs, GenSettings(max_new_tokens=8))
        assert [r.key for r in out] == [r.key for r in reqs]
    finally:
        gen.close()
    with pytest.raises(T2SError, match="needs 8 GPUs; 4 visible"):
        make_generator("vllm", base_model="m", adapters={}, tokenizer_dir=str(qwen3_tokenizer_dir),
                       tensor_parallel_size=4, data_parallel_size=2)


# --- eval_vote ---
def test_vote_groups_results_by_the_scorers_rules(spider1_dir, tmp_path):
    db = spider1_dir / "database" / "concert_singer" / "concert_singer.sqlite"
    q = Question(qid="q1", db_id="concert_singer", question="Countries of singers?", gold="SELECT country FROM singer",
                 db_path=db)
    samples = [{"sql": "SELECT count(*) FROM singer"},          # its own group
               {"sql": "SELECT DISTINCT country FROM singer"},  # equal to the next once DISTINCT is stripped,
               {"sql": "SELECT country FROM singer"},           # as the scorer strips it
               {"sql": "SELECT nonsense FROM"},                 # invalid: does not vote
               {"sql": ""}]                                      # empty: does not vote
    cfg = EvalConfig(base_model="m", out_dir=str(tmp_path), spider_dir=str(spider1_dir), include_base=True,
                     n_samples=5, temperature=0.7,
                     workers=2)
    [results] = execute_question_samples(cfg, [(q, samples)])
    assert results[4] is None and not results[3].ok
    pick, vote = choose_by_vote(samples, results)
    assert pick["sql"] == "SELECT DISTINCT country FROM singer"  # the larger group; its earliest sample
    assert vote == {"valid": 3, "votes": 2, "groups": 2}


# --- question_values ---
COUNTRIES = ["France", "Netherlands", "United States", "Japan", "Brazil", "Germany", "Spain", "Italy"]
LONG = "A very long biography that mentions France somewhere in the middle of it " * 2


def make_db(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, bio TEXT, age INTEGER);"
        "CREATE TABLE stadium (stadium_id INTEGER PRIMARY KEY, name TEXT, capacity INTEGER);")
    names = ["Joe Sharp", "Timbaland", "Justin Brown", "Rose White", "John Nizinik", "Tribal King", "Ann", "Bo"]
    for i, (name, country) in enumerate(zip(names, COUNTRIES)):
        conn.execute("INSERT INTO singer VALUES (?, ?, ?, ?, ?)", (i, name, country, LONG if i == 3 else "short",
                                                                   20 + i))
    for i, name in enumerate(["Stadium A", "Stadium B", "Stadium C", "Stadium D"]):
        conn.execute("INSERT INTO stadium VALUES (?, ?, ?)", (i, name, 1000 * i))
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def db(tmp_path) -> Path:
    return make_db(tmp_path / "database" / "concerts" / "concerts.sqlite")


@pytest.mark.skipif(find_spec("rapidfuzz") is None, reason="rapidfuzz is not installed")
def test_question_value_is_found_and_unrelated_values_are_not(db):
    values = read_text_values(db)
    matches = match_values("Show the names of singers from France.", values, per_column=3)
    assert matches == {("singer", "country"): ["France"]}
    # fuzzy: a near miss still finds the stored spelling; the threshold keeps other countries out
    assert match_values("singers from the Netherland", values, per_column=3) == {("singer", "country"): ["Netherlands"]}
    assert match_values("How many singers are there?", values, per_column=3) == {}
    # numbers are not text values; a value longer than MAX_VALUE_CHARS is never a candidate
    assert all(len(v) <= MAX_VALUE_CHARS for vs in values.values() for v in vs)
    assert ("singer", "age") not in values and LONG not in values[("singer", "bio")]


@pytest.mark.skipif(find_spec("rapidfuzz") is None, reason="rapidfuzz is not installed")
def test_caps_per_column_total_and_rows_scanned(db):
    values = read_text_values(db)
    q = "Capacity of stadium a, stadium b, stadium c and stadium d for singers from Japan"
    assert match_values(q, values, per_column=2)[("stadium", "name")] == ["Stadium A", "Stadium B"]
    assert len(match_values(q, values, per_column=4)[("stadium", "name")]) == 4
    capped = match_values(q, values, per_column=4, max_total=3)
    assert sum(len(v) for v in capped.values()) == 3
    # only the first rows of each column are read
    assert read_text_values(db, max_rows=2)[("singer", "country")] == ["France", "Netherlands"]


@pytest.mark.skipif(find_spec("rapidfuzz") is None, reason="rapidfuzz is not installed")
def test_rendering_with_values_off_is_todays_text(db):
    schema = read_sqlite_schema(db, sample_values=2)
    expected = (
        "CREATE TABLE singer (\n"
        "  singer_id INTEGER, -- e.g. 0, 1\n"
        "  name TEXT, -- e.g. 'Joe Sharp', 'Timbaland'\n"
        "  country TEXT, -- e.g. 'France', 'Netherlands'\n"
        "  bio TEXT, -- e.g. 'short', 'A very long biography that mentions F...'\n"
        "  age INTEGER, -- e.g. 20, 21\n"
        "  PRIMARY KEY (singer_id)\n"
        ");\n\n"
        "CREATE TABLE stadium (\n"
        "  stadium_id INTEGER, -- e.g. 0, 1\n"
        "  name TEXT, -- e.g. 'Stadium A', 'Stadium B'\n"
        "  capacity INTEGER, -- e.g. 0, 1000\n"
        "  PRIMARY KEY (stadium_id)\n"
        ");"
    )
    assert render_schema(schema) == render_schema(schema, question_values={}) == expected
    on = render_schema(schema, question_values=QuestionValueMatcher(2).match(db, "singers from Japan"))
    assert "  country TEXT, -- e.g. 'France', 'Netherlands'; values matching the question: 'Japan'\n" in on
    assert on.replace("; values matching the question: 'Japan'", "") == expected
    q = Question(qid="q", db_id="concerts", question="singers from Japan", gold="SELECT 1", db_path=db)
    assert question_messages(q, {}, 2) == question_messages(q, {}, 2, make_matcher(0))
    assert make_matcher(0) is None
    with pytest.raises(T2SError, match="question-values"):
        make_matcher(-1)


def _tiny_spider(root: Path, questions: list[tuple[str, str]]) -> Path:
    make_db(root / "database" / "concerts" / "concerts.sqlite")
    make_db(root / "database" / "other" / "other.sqlite")
    (root / "tables.json").write_text(json.dumps([{"db_id": "concerts"}, {"db_id": "other"}]))
    items = [{"db_id": db, "question": q, "query": "SELECT name FROM singer"} for db, q in questions]
    (root / "train_spider.json").write_text(json.dumps(items))
    (root / "train_others.json").write_text("[]")
    return root


@pytest.mark.skipif(find_spec("rapidfuzz") is None, reason="rapidfuzz is not installed")
def test_prepared_training_prompt_equals_eval_and_infer_prompt(tmp_path, qwen3_tokenizer_dir, qwen3_tokenizer):
    from t2s_fast.data.prepare import PrepareConfig, prepare
    from t2s_fast.infer import InferConfig, build_infer_messages

    questions = [("concerts", "Names of singers from France?"), ("concerts", "Capacity of stadium b?"),
                 ("other", "Which singers come from Japan?"), ("other", "How many singers are there?")]
    spider = _tiny_spider(tmp_path / "spider", questions)
    out = tmp_path / "prepared"
    stats = prepare(PrepareConfig(spider_dir=spider, out_dir=out, tokenizer=str(qwen3_tokenizer_dir),
                                  question_values=2, valid_fraction=0.5))
    assert stats["question_values"]["examples_with_values"] == 3
    lines = [json.loads(x) for f in ("stage1_train.jsonl", "stage1_valid.jsonl")
             for x in (out / f).read_text().splitlines()]
    assert len(lines) == 4
    cache, matcher = {}, make_matcher(2)
    for line in lines:
        db_path = spider / "database" / line["db_id"] / f"{line['db_id']}.sqlite"
        q = Question(qid=line["id"], db_id=line["db_id"], question=line["question"], gold=line["sql"], db_path=db_path)
        assert question_messages(q, cache, 3, matcher) == line["messages"][:2]
        assert build_prompts([q], qwen3_tokenizer, question_values=2)[q.qid] == build_prompts(
            [Question(qid=q.qid, db_id=q.db_id, question=q.question, gold=None, messages=line["messages"])],
            qwen3_tokenizer)[q.qid]
        infer_msgs = build_infer_messages(InferConfig(model_path="m", question=line["question"], db=str(db_path),
                                                      question_values=2))
        assert infer_msgs == line["messages"][:2]
    by_q = {line["question"]: line["messages"][1]["content"] for line in lines}
    assert "values matching the question: 'France'" in by_q["Names of singers from France?"]
    assert "values matching the question: 'Stadium B'" in by_q["Capacity of stadium b?"]
    assert "values matching the question" not in by_q["How many singers are there?"]


# --- selection ---
def _fake_run(folder: Path) -> Path:
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


@pytest.fixture
def renamed_dev(tmp_path, spider1_dir) -> Path:
    """A Spider folder whose valid.json is a copy of dev.json (and no dev.json)."""
    folder = tmp_path / "spider-copy"
    folder.mkdir()
    shutil.copy(spider1_dir / "dev.json", folder / "valid.json")
    return folder


def test_the_fingerprint_is_spider_dev(spider1_dir):
    from t2s_fast.evaluate.spider_dev import SPIDER_DEV_KEYS, is_spider_dev_question, question_key

    dev = json.loads((spider1_dir / "dev.json").read_text())
    assert SPIDER_DEV_KEYS == {question_key(q["db_id"], q["question"]) for q in dev}
    assert is_spider_dev_question("concert_singer", "  How many SINGERS do we have? ")
    train = json.loads((spider1_dir / "train_spider.json").read_text())
    assert not any(is_spider_dev_question(q["db_id"], q["question"]) for q in train)


def test_a_renamed_copy_of_dev_is_refused_by_eval_checkpoints(tmp_path, capsys, renamed_dev):
    run = _fake_run(tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--checkpoints", str(run), "--base-model", "m", "--out-dir", str(tmp_path / "o"),
              "--suite", "spider1", "--spider-dir", str(renamed_dev), "--split", "valid"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "refuses Spider dev" in err and "--split valid" in err, err
    assert not (tmp_path / "o").exists()


def test_a_renamed_copy_of_dev_is_refused_by_sweep_and_ablate(tmp_path, renamed_dev, spider1_dir):
    from t2s_fast.evaluate.ablation_config import AblationConfig, check_ablation
    from t2s_fast.sweep.config import SweepConfig
    from t2s_fast.sweep.plan import check_plan
    from t2s_fast.sweep.runner import expand_variants

    held = {"suite": "spider1", "spider_dir": str(renamed_dev), "split": "valid"}
    cfg = SweepConfig(out_dir=str(tmp_path / "sw"), max_cost_usd=1.0, train={"model_name": "m"},
                      variants=[{"name": "a"}], heldout=held, source="sweep.json").validate()
    with pytest.raises(T2SError, match=r"sweep \(sweep.json: heldout\) chooses .* refuses Spider dev .*--split valid"):
        check_plan(cfg, expand_variants(cfg))
    ab = AblationConfig(out_dir=str(tmp_path / "ab"), source="levers.json", arms=[{"name": "greedy", "group": "g"}],
                        eval={"base_model": "m", "include_base": True, "repair": "none", **held})
    with pytest.raises(T2SError, match="refuses Spider dev"):
        check_ablation(ab, check_files=False)


def test_a_prepared_copy_of_dev_under_another_name_is_refused_and_training_lines_pass(tmp_path, spider1_dir):
    from t2s_fast.evaluate.selection import spider_dev_reason

    dev = json.loads((spider1_dir / "dev.json").read_text())
    lines = [{"id": f"x-{i}", "db_id": q["db_id"], "question": q["question"], "sql": q["query"]} for i, q in
             enumerate(dev[:3])]
    path = tmp_path / "stage1_valid.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert "stage1_valid.jsonl:1" in spider_dev_reason(suite="heldout", questions=str(path))
    train = json.loads((spider1_dir / "train_spider.json").read_text())[:50]
    path.write_text("".join(json.dumps({"db_id": q["db_id"], "question": q["question"]}) + "\n" for q in train))
    assert spider_dev_reason(suite="heldout", questions=str(path)) is None
    shutil.copy(spider1_dir / "train_spider.json", tmp_path / "mine.json")  # a training split under another name
    assert spider_dev_reason(suite="spider1", split="mine", spider_dir=str(tmp_path)) is None


# --- report_cosmetics ---
@pytest.mark.parametrize("ex, label", [(0.025, "2.5"), (0.55, "55"), (1.0, "100"), (1 / 3, "33.3"), (0.0, "0"),
                                       (None, "n/a")])
def test_bar_labels_keep_decimals(ex, label):
    assert report.bar_label(ex) == label


@pytest.fixture
def figures(monkeypatch):
    seen = []
    monkeypatch.setattr(report, "_png", lambda fig: seen.append(fig) or "png")
    return seen


@pytest.mark.parametrize("horizontal", [True, False])
def test_a_one_category_chart_shows_every_bar_whole_with_its_label(figures, horizontal):
    report._grouped_bars(["concert_singer"], {"base model": [0.025], "stage1": [1.0]}, title="t",
                         horizontal=horizontal)
    ax = figures[-1].axes[0]
    lo, hi = sorted(ax.get_ylim() if horizontal else ax.get_xlim())
    bars = [p for p in ax.patches]
    assert len(bars) == 2
    for b in bars:
        start, size = (b.get_y(), b.get_height()) if horizontal else (b.get_x(), b.get_width())
        assert lo <= start and start + size <= hi  # the bar's whole thickness is inside the axes
        length = b.get_width() if horizontal else b.get_height()
        limit = ax.get_xlim()[1] if horizontal else ax.get_ylim()[1]
        assert length <= limit
    assert {t.get_text() for t in ax.texts} == {"2.5", "100"}


def test_title_names_what_was_evaluated():
    cfg = SimpleNamespace(suite="jsonl", questions="/tmp/demo/data/heldout.jsonl", split="dev")
    assert report.report_title(cfg) == "t2s-fast evaluation: heldout.jsonl"
    assert report.report_title(SimpleNamespace(suite="spider1", questions=None, split="dev")) == \
        "t2s-fast evaluation: spider1 dev"
    assert not report.report_title(SimpleNamespace(suite="jsonl", questions=None, split="dev")).endswith("jsonl")


def test_decode_does_not_ask_for_space_clean_up(qwen3_tokenizer_dir, monkeypatch):
    from transformers import AutoTokenizer
    from transformers import tokenization_utils_tokenizers as tut

    from t2s_fast.prompt import decode

    tok = AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir), clean_up_tokenization_spaces=True)  # as the demo's
    warned = []
    monkeypatch.setattr(tut.logger, "warning_once", lambda msg, *a, **k: warned.append(msg))
    ids = tok("SELECT a , b FROM t", add_special_tokens=False)["input_ids"]
    assert decode(tok, ids) == "SELECT a , b FROM t"
    assert not [m for m in warned if "clean_up_tokenization_spaces" in m]
    tok.decode(ids)  # the plain call is what warned
    assert [m for m in warned if "clean_up_tokenization_spaces" in m]


@pytest.mark.parametrize("given, canonical", [("bf16", "bfloat16"), ("BF16", "bfloat16"), ("bfloat16", "bfloat16"),
                                              ("fp16", "float16"), ("float16", "float16"), ("fp32", "float32"),
                                              ("float32", "float32"), (None, None)])
def test_dtype_names_normalize_to_one_vocabulary(given, canonical):
    from t2s_fast.dtypes import normalize_dtype

    assert normalize_dtype(given) == canonical


def test_eval_and_merge_take_the_same_dtype_names(tmp_path, capsys):
    from t2s_fast.cli import main
    from t2s_fast.dtypes import normalize_dtype
    from t2s_fast.evaluate.config import EvalConfig

    cfg = EvalConfig(base_model="m", out_dir=str(tmp_path), include_base=True, suite="jsonl",
                     questions="q.jsonl", dtype="bf16")
    assert cfg.dtype == "bfloat16"
    with pytest.raises(T2SError, match="--dtype 'fp8'"):
        normalize_dtype("fp8")
    for cmd in (["eval", "--base-model", "m", "--include-base", "--suite", "jsonl", "--questions", "q.jsonl",
                 "--out-dir", str(tmp_path / "e")],
                ["merge", "--adapter-path", str(tmp_path / "a"), "--output-dir", str(tmp_path / "m")]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--dtype", "fp8"])
        assert exc.value.code == 2 and "--dtype 'fp8'" in capsys.readouterr().err


def test_a_chart_of_one_database_is_small(figures):
    report._grouped_bars(["company"], {"base model": [0.025], "demo-lora": [0.55]}, title="t", horizontal=True)
    width, height = figures[-1].get_size_inches()
    assert width <= 7 and height <= 2
    report._grouped_bars([f"db{i}" for i in range(20)], {"a": [0.5] * 20}, title="t", horizontal=True)
    assert tuple(figures[-1].get_size_inches()) == (9, 0.32 * 20 + 1)  # many databases: as before


def test_the_report_names_a_converted_model_by_its_alias():
    from t2s_fast.evaluate.document import to_html

    rep = {"base_model": "/root/.cache/t2s-fast/models/smollm2-135m-float32", "backend": "hf", "source": "q.jsonl",
           "decoding": "greedy", "max_new_tokens": 56, "distinct_handling": "d", "timeout_s": 10.0}
    questions = {"evaluated": 1, "selected": 1, "executable": 1, "missing_databases": [],
                 "not_executable": {"count": 0, "reasons": {}, "qids": []}}
    page = to_html(report.Document("t", report.settings_section({"settings": rep, "questions": questions})))
    assert "Base model: <code>smollm2-135m</code> (converted once to <code>/root/.cache" in page


def test_the_speed_line_of_a_resumed_run_keeps_this_session_apart():
    from t2s_fast.evaluate.document import Document, to_markdown

    timing = {"generated_tokens": 1656, "generation_seconds": 62.245, "tokens_per_s": 26.6,
              "device": {"device": "cpu (x86_64)"}, "scoring_seconds": 0.1, "wall_seconds_this_session": 29.4,
              "this_session": {"requests": 40, "tokens": 726, "seconds": 27.7, "tokens_per_s": 26.2, "resumed": 40}}
    md = to_markdown(Document("t", report.speed_section(timing)))
    assert "1656 tokens generated in 62.2 s of generation" in md and "summed over this session and the earlier" in md
    assert "this session: 726 tokens in 27.7 s of generation (26.2 tokens/s); 40 answers came from the earlier" in md
    fresh = dict(timing, this_session=dict(timing["this_session"], resumed=0))
    assert "earlier" not in to_markdown(Document("t", report.speed_section(fresh)))


# --- eval_report_screenshot ---
def synthetic_report() -> dict:
    def adapter(name, ex, easy, hard, dbs):
        return {"display_name": name, "path": None, "ex": ex, "n": 40, "correct": int(ex * 40), "not_executable": 0,
                "by_hardness": {"easy": {"n": 20, "ex": easy}, "hard": {"n": 20, "ex": hard}},
                "by_database": {db: {"n": 10, "ex": v} for db, v in dbs.items()},
                "errors": {"runtime": 3}, "extraction": {"n": 40, "changed": 4, "rate": 0.1, "methods": {"plain": 36}},
                "generated_tokens": 800, "mean_generated_tokens": 20.0}

    return {
        "title": "screenshot test",
        "settings": {"base_model": "m", "backend": "hf", "source": "dev.json", "decoding": "greedy",
                     "max_new_tokens": 64,
                     "distinct_handling": "DISTINCT removed", "timeout_s": 30.0, "self_consistency": None},
        "questions": {"selected": 40, "evaluated": 40, "executable": 40, "missing_databases": [],
                      "not_executable": {"count": 0, "reasons": {}, "qids": []}},
        "adapters": {"__base__": adapter("base model", 0.3, 0.5, 0.1, {"singer": 0.4, "pets_1": 0.2}),
                     "stage1": adapter("stage1", 0.7, 0.9, 0.5, {"singer": 0.8, "pets_1": 0.6})},
        "disagreements": {"count": 1, "shown": 1, "rows": [
            {"qid": "dev-0001", "db_id": "singer", "question": "How many singers?",
             "gold": "SELECT count(*) FROM singer",
             "hardness": "easy", "results": {"__base__": {"sql": "SELECT 1", "match": False, "error_kind": None},
                                             "stage1": {"sql": "SELECT count(*) FROM singer", "match": True,
                                                        "error_kind": None}}}]},
    }


def screenshot(chromium: str, html_path, png_path, profile) -> None:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={png_path}", "--window-size=1280,2000",
           f"file://{html_path}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def colored_pixels(png_path) -> int:
    """Saturated pixels: the bars of the plots (text is black/grey, table cells pale)."""
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png_path))[..., :3]
    saturation = img.max(axis=2) - img.min(axis=2)
    return int((saturation > 0.35).sum())


@pytest.mark.slow
def test_report_html_renders_plots_in_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("headless Chromium is not installed")
    report = synthetic_report()
    with_plots, without = tmp_path / "with.html", tmp_path / "without.html"
    with_plots.write_text(render_html(report))
    without.write_text(render_html(report, plots=False))
    assert "data:image/png;base64," in with_plots.read_text()
    screenshot(chromium, with_plots, tmp_path / "with.png", tmp_path / "profile1")
    screenshot(chromium, without, tmp_path / "without.png", tmp_path / "profile2")
    plotted, plain = colored_pixels(tmp_path / "with.png"), colored_pixels(tmp_path / "without.png")
    assert plotted > 20_000, f"only {plotted} coloured pixels: the plots did not render"
    assert plotted > 10 * max(plain, 1000)
