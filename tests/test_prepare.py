"""`t2s-fast prepare` on the real Spider 1.0 / 2.0 data (run once per session) and the issue's acceptance checks."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

from t2s_fast.data.prepare import OUTPUT_FILES, PrepareConfig, prepare
from t2s_fast.data.spider2 import norm
from t2s_fast.prompt import render_conversation

pytestmark = pytest.mark.slow  # every test here reads the real `prepare` of Spider 1.0 + 2.0 (a minute)

MAX_LEN = 3072


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, spider1_dir, spider2_dir, qwen3_tokenizer_dir):
    out = tmp_path_factory.mktemp("prepared")
    t0 = time.perf_counter()
    stats = prepare(
        PrepareConfig(
            spider_dir=spider1_dir, spider2_dir=spider2_dir, out_dir=out,
            tokenizer=str(qwen3_tokenizer_dir), max_seq_length=MAX_LEN,
        )
    )
    wall = time.perf_counter() - t0
    files = {name: _rows(out / name) for name in OUTPUT_FILES if name.endswith(".jsonl")}
    return {"out": out, "stats": stats, "files": files, "wall": wall}


def test_writes_six_files_and_stats_fast(prepared):
    out = prepared["out"]
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)  # no temp leftovers
    stats = json.loads((out / "prepare_stats.json").read_text())
    for name, rows in prepared["files"].items():
        assert rows, f"{name} is empty"
        assert stats["files"][name]["examples"] == len(rows)
        assert stats["files"][name]["tokens"]["max"] <= MAX_LEN
    assert prepared["wall"] < 180, "prepare must finish in under 3 minutes"


def test_line_format(prepared):
    for name, rows in prepared["files"].items():
        for r in rows:
            assert set(r) == {"id", "source", "db_id", "dialect", "question", "sql", "messages"}
            assert r["source"] in ("spider1", "spider2") and r["dialect"] in ("sqlite", "bigquery", "snowflake")
            roles = [m["role"] for m in r["messages"]]
            assert roles == ["system", "user", "assistant"]
            user = r["messages"][1]["content"]
            assert r["question"].strip() in user and f"Database: {r['db_id']}" in user
            assert "CREATE TABLE" in user, f"{name} {r['id']}: empty schema"


def test_every_spider1_train_example_is_kept_or_dropped_with_reason(prepared, spider1_dir):
    stage1 = {r["id"]: r for n in ("stage1_train.jsonl", "stage1_valid.jsonl") for r in prepared["files"][n]}
    dropped = {d["id"]: d for d in prepared["stats"]["dropped"]}
    n_checked = 0
    for fname in ("train_spider.json", "train_others.json"):
        data = json.loads((spider1_dir / fname).read_text())
        for i, ex in enumerate(data):
            ex_id = f"spider1-{fname.removesuffix('.json')}-{i}"
            db_file = spider1_dir / "database" / ex["db_id"] / f"{ex['db_id']}.sqlite"
            if ex_id in stage1:
                row = stage1[ex_id]
                assert row["db_id"] == ex["db_id"] and row["question"] == ex["question"].strip()
                # the assistant message is the gold SQL and nothing else
                assert row["messages"][2]["content"] == ex["query"].strip() == row["sql"]
            else:
                assert ex_id in dropped and dropped[ex_id]["reason"], f"{ex_id} neither written nor dropped"
                if db_file.is_file():
                    assert "missing" not in dropped[ex_id]["reason"]
                else:
                    assert "missing" in dropped[ex_id]["reason"]
            n_checked += 1
    assert n_checked == 8659


def test_validation_holds_out_whole_databases(prepared):
    f = prepared["files"]
    train_dbs = {r["db_id"] for r in f["stage1_train.jsonl"]}
    valid_dbs = {r["db_id"] for r in f["stage1_valid.jsonl"]}
    assert valid_dbs and not (train_dbs & valid_dbs)
    frac = len(f["stage1_valid.jsonl"]) / (len(f["stage1_train.jsonl"]) + len(f["stage1_valid.jsonl"]))
    assert 0.05 < frac < 0.2
    s2_train = {norm(r["db_id"]) for r in f["stage2_spider2_only_train.jsonl"]}
    s2_valid = {norm(r["db_id"]) for r in f["stage2_spider2_only_valid.jsonl"]}
    assert s2_valid and not (s2_train & s2_valid)


def test_every_spider2_gold_question_is_in_a_stage2_file_or_dropped(prepared, spider2_dir):
    written = {}
    for n in ("stage2_spider2_only_train.jsonl", "stage2_spider2_only_valid.jsonl"):
        for r in prepared["files"][n]:
            written[r["id"]] = r
    dropped = {d["id"]: d for d in prepared["stats"]["dropped"] if d["source"] == "spider2"}
    expected = []  # (id as written, gold path)
    lite_gold = spider2_dir / "spider2-lite" / "evaluation_suite" / "gold" / "sql"
    snow_gold = spider2_dir / "spider2-snow" / "evaluation_suite" / "gold" / "sql"
    lite_ids = set()
    for r in _rows(spider2_dir / "spider2-lite" / "spider2-lite.jsonl"):
        if (lite_gold / f"{r['instance_id']}.sql").is_file():
            expected.append((r["instance_id"], lite_gold / f"{r['instance_id']}.sql"))
            lite_ids.add(r["instance_id"])
    for r in _rows(spider2_dir / "spider2-snow" / "spider2-snow.jsonl"):
        iid = r["instance_id"]
        if (snow_gold / f"{iid}.sql").is_file():
            expected.append((f"snow:{iid}" if iid in lite_ids else iid, snow_gold / f"{iid}.sql"))
    assert len(expected) == 250 + 120
    for ex_id, gold in expected:
        if ex_id in written:
            row = written[ex_id]
            assert row["messages"][2]["content"] == gold.read_text(encoding="utf-8").strip()
            assert "CREATE TABLE" in row["messages"][1]["content"]
        else:
            assert ex_id in dropped and dropped[ex_id]["reason"], f"{ex_id} neither written nor dropped"
    # every dialect is represented
    assert {r["dialect"] for r in written.values()} == {"sqlite", "bigquery", "snowflake"}
    assert len(written) >= 250


def test_no_rendered_example_exceeds_max_seq_length(prepared, qwen3_tokenizer):
    """Re-measured independently of prepare: every Spider 2.0 and every shortened example, and the longest
    Spider 1.0 ones by characters (re-tokenizing all 9k would cost most of this file's time budget)."""
    seen = {}
    for rows in prepared["files"].values():
        for r in rows:
            seen[r["id"]] = (r["source"], render_conversation(qwen3_tokenizer, r["messages"]))
    shortened = {s["id"] for s in prepared["stats"]["shortened"]}
    assert shortened, "the real data has schemas that need shortening"
    spider1_longest = sorted((t for i, (src, t) in seen.items() if src == "spider1"), key=len)[-300:]
    texts = [t for i, (src, t) in seen.items() if src == "spider2" or i in shortened] + spider1_longest
    lengths = [len(ids) for ids in qwen3_tokenizer(texts, add_special_tokens=False)["input_ids"]]
    assert max(lengths) <= MAX_LEN
    assert max(lengths) > MAX_LEN // 2  # the check is not vacuous


def test_stage2_mixed_is_spider2_plus_replay(prepared):
    f, stats = prepared["files"], prepared["stats"]
    for split in ("train", "valid"):
        mixed = f[f"stage2_mixed_{split}.jsonl"]
        only = f[f"stage2_spider2_only_{split}.jsonl"]
        stage1_ids = {r["id"] for r in f[f"stage1_{split}.jsonl"]}
        s2 = [r for r in mixed if r["source"] == "spider2"]
        replay = [r for r in mixed if r["source"] == "spider1"]
        assert sorted(r["id"] for r in s2) == sorted(r["id"] for r in only)
        assert len(replay) == stats["splits"]["stage2_replay"][split] == round(1.0 * len(only))
        assert {r["id"] for r in replay} <= stage1_ids  # replay never leaks validation into training


def test_replay_mix_for_another_ratio_rebuilds_prepares_own_lines(prepared, tmp_path):
    """`sweep` writes a stage-2 mix per replay ratio from prepare's output: for prepare's own ratio the lines
    are exactly the ones prepare wrote."""
    from t2s_fast.data.prepare import write_replay_mix

    train, valid = write_replay_mix(prepared["out"], 1.0, tmp_path / "r1")
    assert train.read_bytes() == (prepared["out"] / "stage2_mixed_train.jsonl").read_bytes()
    assert valid.read_bytes() == (prepared["out"] / "stage2_mixed_valid.jsonl").read_bytes()
    half, _ = write_replay_mix(prepared["out"], 0.5, tmp_path / "r05")
    only = prepared["files"]["stage2_spider2_only_train.jsonl"]
    assert sum(r["source"] == "spider1" for r in _rows(half)) == round(0.5 * len(only))


def test_stats_record_reasons_and_percentiles(prepared):
    stats = prepared["stats"]
    assert stats["sources"]["spider1"]["databases_missing"] == ["baseball_1", "soccer_1"]
    reasons = defaultdict(int)
    for d in stats["dropped"]:
        assert d["reason"]
        reasons[d["source"]] += 1
    assert reasons["spider1"] >= 96  # baseball_1 (82) and soccer_1 (14) questions
    for s in stats["shortened"]:
        assert s["level"] in ("no_sample_values", "gold_tables", "gold_columns",
                              "gold_fields") and s["tokens"] <= MAX_LEN
    for fs in stats["files"].values():
        tok = fs["tokens"]
        assert tok["p50"] <= tok["p90"] <= tok["p95"] <= tok["p99"] <= tok["max"]
    # the shared copy has no external-knowledge documents: recorded, not invented
    assert stats["external_knowledge_unavailable"]


def test_eval_prompt_equals_training_prompt_on_the_real_data(prepared, spider1_dir, spider2_dir, tmp_path):
    """For the same question, eval sends the messages prepare wrote (without the answer), in each dialect, wherever
    the whole schema fits both (training may shorten a schema knowing the gold SQL, which eval never reads)."""
    from t2s_fast.evaluate.config import EvalConfig
    from t2s_fast.evaluate.generation import question_messages
    from t2s_fast.evaluate.harness import load_questions

    f, stats = prepared["files"], prepared["stats"]
    shortened = {s["id"] for s in stats["shortened"]}
    extra_folders = set(stats["sources"]["spider2"].get("extra_schema_folders", {}))  # found through the gold SQL
    training = {r["id"]: r for rows in f.values() for r in rows
                if r["id"] not in shortened and r["id"] not in extra_folders}

    def eval_questions(**kw):
        cfg = EvalConfig(base_model="m", out_dir=str(tmp_path / "eval"), include_base=True, **kw)
        return load_questions(cfg).questions, cfg.sample_values

    compared, differ = {}, []
    held, n = eval_questions(suite="heldout", questions=str(prepared["out"] / "stage1_valid.jsonl"),
                             db_root=str(spider1_dir / "database"))
    lite, _ = eval_questions(suite="spider2-lite", spider_dir=str(spider2_dir))
    lite = [q for q in lite if q.extra["schema_shortening"] == "full"]
    cache: dict = {}
    for q in held + lite:
        if q.qid in training:
            rec = training[q.qid]
            compared[rec["dialect"]] = compared.get(rec["dialect"], 0) + 1
            if question_messages(q, cache, n) != rec["messages"][:-1]:
                differ.append(q.qid)
    assert not differ, f"eval prompts differ from the training prompts of {len(differ)} questions: {differ[:10]}"
    assert set(compared) == {"sqlite", "bigquery", "snowflake"} and min(compared.values()) >= 5, compared


def test_heldout_and_jsonl_suites_ask_the_same_prompt_for_every_line(prepared, spider1_dir, tmp_path):
    """`--suite heldout` (prompts rebuilt from the databases) and `--suite jsonl` (the file's messages) send the
    same messages for every line of the real stage1_valid.jsonl: the lines prepare shortened (a schema too long
    with its sample values, cre_Drama_Workshop_Groups at 3072 tokens) are rebuilt at that level too."""
    from t2s_fast.evaluate.config import EvalConfig
    from t2s_fast.evaluate.harness import load_questions, question_messages

    valid = prepared["out"] / "stage1_valid.jsonl"
    levels = {s["id"]: s["level"] for s in prepared["stats"]["shortened"]}
    ids = {r["id"] for r in prepared["files"]["stage1_valid.jsonl"]}
    assert any(levels.get(i) == "no_sample_values" for i in ids), "the case this test is about: shortened lines"

    def messages(suite):
        cfg = EvalConfig(base_model="m", out_dir=str(tmp_path / suite), include_base=True, suite=suite,
                         questions=str(valid), db_root=str(spider1_dir / "database"))
        cache: dict = {}
        return {q.qid: question_messages(q, cache, cfg.sample_values) for q in load_questions(cfg).questions}

    held, plain = messages("heldout"), messages("jsonl")
    assert set(held) == set(plain) == ids
    differ = sorted(q for q in ids if held[q] != plain[q])
    assert not differ, f"{len(differ)} of {len(ids)} prompts differ between heldout and jsonl: {differ[:5]}"
