"""Repair of failing SQL, in `eval --repair` and `infer --repair`.

- Repair of failing SQL (eval --repair): a scripted generator at the engine seam makes the first pass fail in
  known ways; the repair pass must replace exactly the failing predictions, score them by the official rules,
  report EX before/after with counts, and resume without generating again.
- `t2s-fast infer --repair resample`: a scripted generator at the engine seam answers the greedy request and the
  repair samples; the CLI must print only the chosen SQL on stdout, one repair line on stderr, generate the samples
  in one call (distinct seeds, the repair temperature, the greedy prompt), and not repair SQL that executes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from t2s_fast.cli import main
from t2s_fast.errors import T2SError
from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.harness import evaluate
from t2s_fast.generate.base import GenResult

# --- eval_repair ---
GOLD = {
    "q-fixed": "SELECT name FROM singer WHERE country = 'France'",
    "q-ok": "SELECT count(*) FROM singer",
    "q-hopeless": "SELECT age FROM singer WHERE name = 'Ann'",
    "q-voted": "SELECT name FROM singer WHERE age > 30",
}
FIRST = {  # first-pass answers: one right, three that do not execute
    "q-fixed": "SELECT nme FROM singer WHERE country = 'France'",
    "q-ok": "SELECT count(*) FROM singer",
    "q-hopeless": "SELECT agee FROM singer WHERE name = 'Ann'",
    "q-voted": "SELECT name FROM singers WHERE age > 30",
}
RESAMPLE = {  # repair samples k = 0, 1, 2
    "q-fixed": ["SELECT nme FROM singer", GOLD["q-fixed"], GOLD["q-fixed"]],
    "q-hopeless": ["SELECT agee FROM singer", "SELEC age", "SELECT x FROM nowhere"],
    # two samples agree on a wrong result, one is right: the vote keeps the majority (wrong) one
    "q-voted": ["SELECT name FROM singer WHERE age > 31", GOLD["q-voted"], "SELECT name FROM singer WHERE age > 31"],
}


class ScriptedGenerator:
    """Answers by question id and sample index; records every call. ``cycle``: resample k answers
    RESAMPLE[qid][k % 3] (RESAMPLE's three answers repeated to any --repair-k, e.g. the default 8)."""

    name = "scripted"
    batch_size = None

    def __init__(self, questions: dict[str, str], cycle: bool = False):
        self.qid_of_question = {v: k for k, v in questions.items()}
        self.calls = []
        self.cycle = cycle

    def qid(self, prompt: str) -> str:
        return next(qid for q, qid in self.qid_of_question.items() if f"Question: {q}" in prompt)

    def generate(self, requests, settings):
        self.calls.append((list(requests), settings))
        out = []
        for r in requests:
            _adapter, qid, sample = r.key.split("|")
            sample = int(sample)
            assert qid == self.qid(r.prompt)
            if sample < 1000:
                text = FIRST[qid]
            elif sample < 2000:
                k = sample - 1000
                text = RESAMPLE[qid][k % len(RESAMPLE[qid]) if self.cycle else k]
            else:  # error feedback: corrected only when the prompt shows the error
                text = GOLD[qid] if "no such column: nme" in r.prompt else FIRST[qid]
            out.append(GenResult(key=r.key, adapter=r.adapter, text=text, n_tokens=len(text.split())))
        return out

    def close(self):
        pass


class NoGeneration(ScriptedGenerator):
    def generate(self, requests, settings):
        raise AssertionError(f"a resumed run generated again: {[r.key for r in requests]}")


QUESTIONS = {"q-fixed": "Names of singers from France?", "q-ok": "How many singers?",
             "q-hopeless": "Age of Ann?", "q-voted": "Singers older than 30?"}


@pytest.fixture
def suite(tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "dbs"
    (root / "concerts").mkdir(parents=True)
    conn = sqlite3.connect(root / "concerts" / "concerts.sqlite")
    conn.executescript("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);"
                       "INSERT INTO singer VALUES (1, 'Joe', 'France', 25), (2, 'Ann', 'Japan', 31),"
                       "(3, 'Bo', 'France', 40);")
    conn.commit()
    conn.close()
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text("".join(json.dumps({"id": qid, "db_id": "concerts", "question": q, "sql": GOLD[qid]}) + "\n"
                             for qid, q in QUESTIONS.items()))
    return qfile, root


def config(suite, out_dir, tokenizer_dir, **kw) -> EvalConfig:
    qfile, root = suite
    return EvalConfig(base_model="scripted", out_dir=str(out_dir), suite="jsonl", questions=str(qfile),
                      db_root=str(root), tokenizer=str(tokenizer_dir), workers=0, include_base=True, **kw)


def scored_by_qid(out_dir: Path) -> dict:
    return {r["qid"]: r for r in map(json.loads, (out_dir / "scored.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_resample_repairs_failing_predictions_and_resumes(suite, tmp_path, qwen3_tokenizer_dir):
    out = tmp_path / "run"
    gen = ScriptedGenerator(QUESTIONS)
    report = evaluate(config(suite, out, qwen3_tokenizer_dir, repair="resample", repair_k=3, repair_temperature=0.9),
                      generator=gen)
    first_calls, repair_calls = gen.calls[:-1], gen.calls[-1]
    assert sum(len(reqs) for reqs, _ in first_calls) == 4
    # one generate call for the repair pass over every failing question, at the repair temperature
    reqs, settings = repair_calls
    assert settings.temperature == 0.9 and len(reqs) == 3 * 3
    assert {r.key.split("|")[1] for r in reqs} == {"q-fixed", "q-hopeless", "q-voted"}
    rep = report["repair"]["adapters"]["__base__"]
    assert (rep["correct_before"], rep["correct_after"]) == (1, 2)
    assert (rep["ex_before"], rep["ex_after"]) == (0.25, 0.5) and report["adapters"]["__base__"]["ex"] == 0.5
    assert (rep["failing"], rep["repaired"], rep["fixed"], rep["still_failing"]) == (3, 2, 1, 1)
    assert rep["extra_tokens"] == sum(len(t.split()) for ts in RESAMPLE.values() for t in ts)
    scored = scored_by_qid(out)
    assert scored["q-fixed"]["pred"] == GOLD["q-fixed"] and scored["q-fixed"]["exec_match"]
    assert scored["q-fixed"]["repair"]["first_pred"] == FIRST["q-fixed"]
    assert "no such column: nme" in scored["q-fixed"]["repair"]["first_error"]
    assert scored["q-fixed"]["repair"]["vote"] == {"valid": 2, "votes": 2, "groups": 1}
    assert scored["q-voted"]["pred"] == RESAMPLE["q-voted"][0] and not scored["q-voted"]["exec_match"]
    assert scored["q-hopeless"]["pred"] == FIRST["q-hopeless"] and not scored["q-hopeless"]["repair"]["repaired"]
    assert "repair" not in scored["q-ok"]
    assert "Repair of failing SQL" in (out / "report.md").read_text()
    assert "EX before" in (out / "report.html").read_text()
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["sample"] for p in preds if p.get("repair") == "resample") == [1000] * 3 + [1001] * 3 + [1002] * 3
    # resume: nothing generated again, same figures
    again = evaluate(config(suite, out, qwen3_tokenizer_dir, repair="resample", repair_k=3, repair_temperature=0.9),
                     generator=NoGeneration(QUESTIONS))
    assert again["repair"]["adapters"] == report["repair"]["adapters"]
    assert scored_by_qid(out) == scored
    # the first pass alone is still there: a run with --repair none resumes and scores it as before
    plain = evaluate(config(suite, out, qwen3_tokenizer_dir, repair="none"), generator=NoGeneration(QUESTIONS))
    assert plain["adapters"]["__base__"]["ex"] == 0.25 and "repair" not in plain
    with pytest.raises(T2SError, match="repair-temperature"):
        evaluate(config(suite, out, qwen3_tokenizer_dir, repair="resample", repair_k=3, repair_temperature=0.5),
                 generator=NoGeneration(QUESTIONS))


@pytest.mark.slow
def test_error_feedback_shows_the_error_in_the_shared_repair_prompt(suite, tmp_path, qwen3_tokenizer_dir,
                                                                     qwen3_tokenizer):
    from t2s_fast.evaluate.generation import question_messages
    from t2s_fast.evaluate.questions import load_jsonl
    from t2s_fast.prompt import build_repair_messages, render_prompt

    out = tmp_path / "run"
    gen = ScriptedGenerator(QUESTIONS)
    report = evaluate(config(suite, out, qwen3_tokenizer_dir, repair="error-feedback", repair_k=1,
                             repair_temperature=0.0), generator=gen)
    reqs, settings = gen.calls[-1]
    assert settings.temperature == 0.0 and len(reqs) == 3
    rep = report["repair"]["adapters"]["__base__"]
    assert (rep["failing"], rep["fixed"]) == (3, 1) and rep["ex_after"] == 0.5
    # the repair prompt is the one prompt builder's: question prompt + failed SQL + SQLite's message
    q = next(q for q in load_jsonl(suite[0], suite[1], dbs=[], limit=None).questions if q.qid == "q-fixed")
    expected = render_prompt(qwen3_tokenizer, build_repair_messages(
        question_messages(q, {}, 3), failed_sql=FIRST["q-fixed"], error="no such column: nme"))
    assert next(r.prompt for r in reqs if "|q-fixed|" in r.key) == expected
    assert scored_by_qid(out)["q-fixed"]["pred"] == GOLD["q-fixed"]


def test_repair_flags_are_checked(suite, tmp_path, qwen3_tokenizer_dir):
    for kw, msg in [({"repair": "retry"}, "--repair"), ({"repair": "resample", "repair_k": 0}, "--repair-k"),
                    ({"repair": "resample", "repair_temperature": 0.0, "repair_k": 1}, "repair-temperature"),
                    ({"repair": "error-feedback", "repair_k": 4, "repair_temperature": 0.0}, "repair-temperature")]:
        with pytest.raises(T2SError, match=msg):
            config(suite, tmp_path / "x", qwen3_tokenizer_dir, **kw)


def test_one_engine_serves_both_passes(suite, tmp_path, qwen3_tokenizer_dir, monkeypatch):
    import t2s_fast.generate.engines as engines

    made = []

    class Counted(ScriptedGenerator):
        def close(self):
            self.closed = True

    def fake_make_generator(backend, **kwargs):
        made.append(Counted(QUESTIONS))
        return made[-1]

    monkeypatch.setattr(engines, "make_generator", fake_make_generator)
    report = evaluate(config(suite, tmp_path / "run", qwen3_tokenizer_dir, repair="resample", repair_k=3,
                             backend="hf"))
    assert len(made) == 1 and made[0].closed and len(made[0].calls) == 2  # first pass, then repair
    assert report["repair"]["adapters"]["__base__"]["fixed"] == 1


@pytest.mark.slow
def test_repair_training_examples_match_the_eval_repair_prompt(suite, tmp_path, qwen3_tokenizer_dir):
    """prepare-repair turns a run's real failures on a training file into examples whose prompt is exactly the
    prompt `eval --repair error-feedback` builds for the same failure; dev data is refused."""
    from t2s_fast.cli import main
    from t2s_fast.prompt import build_messages, build_repair_messages

    qfile, root = suite
    train = tmp_path / "stage1_train.jsonl"
    lines = []
    for qid, q in QUESTIONS.items():
        msgs = build_messages(dialect="sqlite", db_id="concerts", schema="CREATE TABLE singer (name TEXT);",
                              question=q, sql=GOLD[qid])
        lines.append({"id": qid, "db_id": "concerts", "question": q, "sql": GOLD[qid], "messages": msgs})
    train.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "run"
    gen = ScriptedGenerator(QUESTIONS)
    evaluate(config((train, root), out, qwen3_tokenizer_dir, repair="error-feedback", repair_k=1,
                    repair_temperature=0.0), generator=gen)
    eval_prompts = {r.key.split("|")[1]: r.prompt for r in gen.calls[-1][0]}
    examples_file = tmp_path / "repair_train.jsonl"
    main(["prepare-repair", "--scored", str(out / "scored.jsonl"), "--questions", str(train),
          "--out", str(examples_file), "--spider-dir", str(tmp_path / "no-spider")])
    examples = {x["id"]: x for x in map(json.loads, examples_file.read_text().splitlines())}
    assert set(examples) == {"q-fixed-repair", "q-hopeless-repair", "q-voted-repair"}
    from transformers import AutoTokenizer

    from t2s_fast.prompt import render_prompt

    tok = AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir))
    for line in lines:
        ex = examples.get(f"{line['id']}-repair")
        if ex is None:
            continue
        assert ex["messages"][-1] == {"role": "assistant", "content": line["sql"]}
        assert ex["messages"] == build_repair_messages(line["messages"], failed_sql=FIRST[line["id"]],
                                                       error=ex["repair_of"]["error"].split(": ", 1)[1],
                                                       sql=line["sql"])
        assert render_prompt(tok, ex["messages"]) == eval_prompts[line["id"]]  # training sees the eval prompt
    # Spider dev is refused: by id, by file name, by database of dev.json
    dev_ids = tmp_path / "ids.jsonl"
    dev_ids.write_text(json.dumps(dict(lines[0], id="dev-0001")) + "\n")
    dev_named = tmp_path / "dev.jsonl"
    dev_named.write_text(train.read_text())
    spider = tmp_path / "spider"
    spider.mkdir()
    (spider / "dev.json").write_text(json.dumps([{"db_id": "concerts", "question": "?", "query": "SELECT 1"}]))
    for questions, extra in [(dev_ids, []), (dev_named, []), (train, ["--spider-dir", str(spider)])]:
        with pytest.raises(SystemExit) as exc:
            main(["prepare-repair", "--scored", str(out / "scored.jsonl"), "--questions", str(questions),
                  "--out", str(tmp_path / "x.jsonl"), *extra])
        assert exc.value.code == 2
    assert not (tmp_path / "x.jsonl").exists()


def test_repair_defaults_to_resample_k8_where_sql_is_executed_and_to_none_elsewhere(tmp_path):
    """--repair auto (the default) is resolved in EvalConfig, so reports, resume checks and arms record what ran."""
    from t2s_fast.evaluate.config import MAX_REPAIR_K

    def cfg(**kw) -> EvalConfig:
        return EvalConfig(base_model="m", out_dir=str(tmp_path / "x"), include_base=True, **kw)

    sqlite_suites = [{"spider_dir": "s"}, {"suite": "heldout", "questions": "q.jsonl"},
                     {"suite": "jsonl", "questions": "q.jsonl", "db_root": "d"}]
    for suite_kw in sqlite_suites:
        c = cfg(**suite_kw)
        assert (c.repair, c.repair_k, c.repair_temperature) == ("resample", 8, 0.8), suite_kw
        assert cfg(**suite_kw, repair="none").repair == "none"  # an explicit none stays none
        assert cfg(**suite_kw, repair="auto").repair == "resample"
    assert cfg(suite="spider2-lite", spider_dir="s").repair == "none"  # its own scorer: never repaired
    assert cfg(suite="spider2-lite", spider_dir="s", repair="resample").repair == "resample"  # as asked
    # the vote keeps its repair pass (questions none of whose samples execute), up to MAX_REPAIR_K samples
    assert cfg(spider_dir="s", n_samples=8, temperature=0.8).repair == "resample"
    assert cfg(spider_dir="s", n_samples=MAX_REPAIR_K + 1, temperature=0.8).repair == "none"
    with pytest.raises(T2SError, match="with --repair: at most"):
        cfg(spider_dir="s", n_samples=MAX_REPAIR_K + 1, temperature=0.8, repair="resample")
    # a bad repair setting under the default says where the repair came from and how to turn it off
    with pytest.raises(T2SError, match=r"--repair-temperature 0.*--repair auto is resample on --suite spider1; "
                                       r"--repair none turns it off"):
        cfg(spider_dir="s", repair_temperature=0.0)
    assert cfg(spider_dir="s", repair="none", repair_temperature=0.0).repair == "none"


@pytest.mark.slow
def test_eval_repairs_a_failing_greedy_prediction_by_default(suite, tmp_path, qwen3_tokenizer_dir, monkeypatch):
    """`t2s-fast eval` without --repair: the greedy first pass, then resample K=8 at T=0.8 for the 3 predictions
    that do not execute (q-fixed is fixed by the vote); `--repair none` scores the greedy pass alone."""
    import t2s_fast.generate.engines as engines
    from t2s_fast.cli import main

    made = []

    def fake_make_generator(backend, **kwargs):
        made.append(ScriptedGenerator(QUESTIONS, cycle=True))
        return made[-1]

    monkeypatch.setattr(engines, "make_generator", fake_make_generator)
    qfile, root = suite
    common = ["eval", "--base-model", "scripted", "--include-base", "--suite", "jsonl", "--questions", str(qfile),
              "--db-root", str(root), "--tokenizer", str(qwen3_tokenizer_dir), "--workers", "0", "--backend", "hf"]
    out = tmp_path / "run"
    main([*common, "--out-dir", str(out)])
    [gen] = made
    (first, first_settings), (repair, repair_settings) = gen.calls
    assert first_settings.greedy and len(first) == 4
    assert len(repair) == 3 * 8 and repair_settings.temperature == 0.8
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["repair"] == "resample"
    assert (report["repair"]["strategy"], report["repair"]["k"]) == ("resample", 8)
    rep = report["repair"]["adapters"]["__base__"]
    assert (rep["ex_before"], rep["ex_after"], rep["fixed"]) == (0.25, 0.5, 1)
    scored = scored_by_qid(out)
    assert scored["q-fixed"]["pred"] == GOLD["q-fixed"]
    assert scored["q-fixed"]["repair"]["first_pred"] == FIRST["q-fixed"]

    made.clear()
    plain = tmp_path / "plain"
    main([*common, "--out-dir", str(plain), "--repair", "none"])
    [gen] = made
    assert len(gen.calls) == 1 and len(gen.calls[0][0]) == 4  # the greedy pass alone
    report = json.loads((plain / "report.json").read_text())
    assert report["settings"]["repair"] == "none" and "repair" not in report
    assert report["adapters"]["__base__"]["ex"] == 0.25


# --- infer_repair ---
GREEDY_FAILS = "SELECT nme FROM singer WHERE age > 30"


class FakeTokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **kwargs):
        return "\n".join(m["content"] for m in messages) + "\nassistant:"


class ScriptedInferGenerator:
    """Call 0 answers the greedy request with ``greedy``; call 1 answers the samples, in order, from ``samples``."""

    name = "scripted"
    tokenizer = FakeTokenizer()

    def __init__(self, greedy: str, samples: list[str]):
        self.texts = [[greedy], samples]
        self.calls, self.closed, self.batch_size = [], False, None

    def generate(self, requests, settings):
        texts = self.texts[len(self.calls)]
        self.calls.append((list(requests), settings))
        assert len(texts) == len(requests)
        return [GenResult(key=r.key, adapter=r.adapter, text=t, n_tokens=len(t.split())) for r, t in zip(requests,
                                                                                                         texts)]

    def close(self):
        self.closed = True


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "concerts.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);"
                       "INSERT INTO singer VALUES (1, 'Joe', 'France', 25), (2, 'Ann', 'Japan', 31),"
                       "(3, 'Bo', 'France', 40);")
    conn.commit()
    conn.close()
    return path


def run_infer(monkeypatch, db, gen: ScriptedInferGenerator, *flags: str) -> dict:
    """Run `t2s-fast infer` on ``db`` with ``gen`` as the engine; the engine's batch size comes back in ``opened``."""
    opened = {}

    def make_generator(backend, **kwargs):
        opened.update(kwargs, backend=backend)
        return gen

    monkeypatch.setattr("t2s_fast.infer.inference_sources", lambda *a, **k: ("base", {"adapter": "adp"}, "tok"))
    monkeypatch.setattr("t2s_fast.generate.engines.make_generator", make_generator)
    main(["infer", "--model-path", "adp", "--question", "Singers older than 30?", "--db", str(db),
          "--sample-values", "0", *flags])
    return opened


def test_failing_greedy_sql_is_replaced_by_the_majority_of_the_samples(monkeypatch, db, capsys):
    samples = ["SELECT x FROM nowhere",                       # does not execute: no vote
               "SELECT count(*) FROM singer",                 # its own group
               "SELECT name FROM singer WHERE age > 30",      # the largest group (2 votes), earliest of it
               "SELECT name FROM singer WHERE age >= 31"]     # same result as the previous one
    gen = ScriptedInferGenerator(GREEDY_FAILS, samples)
    opened = run_infer(monkeypatch, db, gen, "--repair", "resample", "--repair-k", "4", "--repair-temperature", "0.7")
    out, err = capsys.readouterr()
    assert out == "SELECT name FROM singer WHERE age > 30\n"  # only the SQL on stdout
    assert "repair: greedy SQL failed (no such column: nme); 4 samples, 3 execute, chose sample 3 (2 votes)" in err
    assert len(gen.calls) == 2 and gen.closed and opened["batch_size"] == 4
    (greedy_reqs, greedy_settings), (reqs, settings) = gen.calls
    assert greedy_settings.greedy
    # the samples: one call, K requests of the greedy prompt and adapter, K distinct seeds, temperature T
    assert len(reqs) == 4 and len({r.seed for r in reqs}) == 4 and len({r.key for r in reqs}) == 4
    assert {(r.prompt, r.adapter) for r in reqs} == {(greedy_reqs[0].prompt, greedy_reqs[0].adapter)}
    assert settings.temperature == 0.7 and settings.max_new_tokens == greedy_settings.max_new_tokens
    assert settings.repetition_guard is not None and greedy_settings.repetition_guard is None  # as eval samples


def test_a_tie_goes_to_the_earliest_sample(monkeypatch, db, capsys):
    gen = ScriptedInferGenerator(GREEDY_FAILS, ["SELECT count(*) FROM singer", "SELECT name FROM singer"])
    run_infer(monkeypatch, db, gen, "--repair", "resample", "--repair-k", "2")
    out, err = capsys.readouterr()
    assert out == "SELECT count(*) FROM singer\n" and "2 samples, 2 execute, chose sample 1 (1 votes)" in err
    assert gen.calls[1][1].temperature == 0.8  # the default --repair-temperature


def test_greedy_sql_that_executes_is_printed_without_sampling(monkeypatch, db, capsys):
    gen = ScriptedInferGenerator("SELECT name FROM singer WHERE age > 99", [])  # executes (no rows): kept
    run_infer(monkeypatch, db, gen, "--repair", "resample")
    out, err = capsys.readouterr()
    assert out == "SELECT name FROM singer WHERE age > 99\n" and "repair" not in err
    assert len(gen.calls) == 1


def test_greedy_sql_stays_when_no_sample_executes(monkeypatch, db, capsys):
    gen = ScriptedInferGenerator(GREEDY_FAILS, ["SELECT x FROM nowhere", "SELEC name", ""])
    run_infer(monkeypatch, db, gen, "--repair", "resample", "--repair-k", "3")
    out, err = capsys.readouterr()
    assert out == GREEDY_FAILS + "\n"
    assert "repair: greedy SQL failed (no such column: nme); 3 samples, 0 execute, kept the greedy SQL" in err


def test_repair_none_prints_a_failing_greedy_sql_as_before(monkeypatch, db, capsys):
    gen = ScriptedInferGenerator(GREEDY_FAILS, [])
    opened = run_infer(monkeypatch, db, gen, "--repair", "none")
    out, err = capsys.readouterr()
    assert out == GREEDY_FAILS + "\n" and "repair" not in err
    assert len(gen.calls) == 1 and opened["batch_size"] == 1


def test_with_a_sqlite_db_a_failing_greedy_sql_is_repaired_by_default(monkeypatch, db, capsys):
    """No --repair: auto is resample with --db on SQLite, --repair-k 8 samples at 0.8."""
    samples = ["SELECT x FROM nowhere"] * 5 + ["SELECT name FROM singer WHERE age > 30"] * 3
    gen = ScriptedInferGenerator(GREEDY_FAILS, samples)
    opened = run_infer(monkeypatch, db, gen)
    out, err = capsys.readouterr()
    assert out == "SELECT name FROM singer WHERE age > 30\n"
    assert "repair: greedy SQL failed (no such column: nme); 8 samples, 3 execute, chose sample 6 (3 votes)" in err
    assert len(gen.calls) == 2 and opened["batch_size"] == 8 and gen.calls[1][1].temperature == 0.8


def test_without_a_db_the_default_is_greedy_alone_and_no_error(tmp_path, monkeypatch, capsys):
    """--schema-file: nothing to execute on, so auto is none (an explicit --repair resample is refused)."""
    gen = ScriptedInferGenerator(GREEDY_FAILS, [])
    opened = {}

    def make_generator(backend, **kwargs):
        opened.update(kwargs)
        return gen

    monkeypatch.setattr("t2s_fast.infer.inference_sources", lambda *a, **k: ("base", {"adapter": "adp"}, "tok"))
    monkeypatch.setattr("t2s_fast.generate.engines.make_generator", make_generator)
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE singer (id INT, name TEXT, age INT);")
    main(["infer", "--model-path", "adp", "--question", "Singers older than 30?", "--schema-file", str(schema),
          "--db-id", "concerts"])
    out, err = capsys.readouterr()
    assert out == GREEDY_FAILS + "\n" and "repair" not in err
    assert len(gen.calls) == 1 and opened["batch_size"] == 1


def test_infer_config_resolves_the_default_repair(db):
    from t2s_fast.infer import InferConfig

    def cfg(**kw) -> InferConfig:
        return InferConfig(model_path="m", question="q", **kw)

    assert (cfg(db=str(db)).repair, cfg(db=str(db)).repair_k) == ("resample", 8)
    assert cfg(db=str(db), repair="none").repair == "none"
    assert cfg(db=str(db), dialect="bigquery").repair == "none"  # executed on SQLite only
    assert cfg(schema_file="schema.sql", db_id="t").repair == "none"
    assert cfg().repair == "none"


@pytest.mark.parametrize("flags, message", [
    (["--schema-file", "schema.sql", "--db-id", "t"], "--repair resample executes the SQL on a database: give --db"),
    (["--db", "x.sqlite", "--dialect", "bigquery"], "--repair resample executes on SQLite: it needs --dialect sqlite"),
    (["--db", "x.sqlite", "--repair-k", "0"], "--repair-k 0: must be between 1 and"),
    (["--db", "x.sqlite", "--repair-temperature", "0"], "--repair-temperature 0"),
    (["--db", "x.sqlite", "--timeout", "0"], "--timeout 0: must be a positive number"),
])
def test_bad_repair_flags_exit_2_naming_them(tmp_path, monkeypatch, capsys, flags, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schema.sql").write_text("CREATE TABLE t (a INT);")
    with pytest.raises(SystemExit) as e:
        main(["infer", "--model-path", "adp", "--question", "How many?", "--repair", "resample", *flags])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


class WatchedGenerator(ScriptedInferGenerator):
    """A CPU engine that reports its progress, as HFGenerator does, a few tokens at a time."""

    device = "cpu"

    def __init__(self, greedy: str, samples: list[str]):
        super().__init__(greedy, samples)
        self.progress = None
        self.watched = []

    def generate(self, requests, settings):
        self.watched.append(self.progress is not None)
        if self.progress is not None:
            for n in (1, 2, 3):
                self.progress(n)
        return super().generate(requests, settings)


def test_on_the_cpu_infer_shows_progress_says_when_repair_starts_and_caps_new_tokens(monkeypatch, db, capsys):
    gen = WatchedGenerator(GREEDY_FAILS, ["SELECT name FROM singer WHERE age > 30"] * 2)
    run_infer(monkeypatch, db, gen, "--repair", "resample", "--repair-k", "2")
    out, err = capsys.readouterr()
    assert out == "SELECT name FROM singer WHERE age > 30\n"
    assert gen.watched == [True, True] and gen.progress is None  # both passes watched, the bar removed after
    assert "greedy SQL (up to 256 tokens, on the CPU)" in err and "repair: 2 samples" in err
    started = err.index("repair: the greedy SQL failed (no such column: nme); sampling 2 more")
    assert started < err.index("repair: 2 samples")  # said before the samples are drawn
    assert [s.max_new_tokens for _, s in gen.calls] == [256, 256]  # the CPU default


def test_max_new_tokens_given_wins_over_the_cpu_default(monkeypatch, db, capsys):
    gen = WatchedGenerator("SELECT name FROM singer", [])
    run_infer(monkeypatch, db, gen, "--max-new-tokens", "40")
    assert gen.calls[0][1].max_new_tokens == 40


def test_hf_progress_criterion_reports_generated_tokens_and_never_stops():
    import torch

    from t2s_fast.generate.hf import _Progress

    seen = []
    crit = _Progress(seen.append, prompt_len=5)
    assert not crit(torch.zeros(2, 9, dtype=torch.long), None).any()
    assert seen == [4]


def test_infer_help_shows_no_empty_default_for_db_id(capsys):
    main(["infer", "--help"])
    help_text = capsys.readouterr().out
    assert '[default: ""]' not in help_text and "--db-id" in help_text
