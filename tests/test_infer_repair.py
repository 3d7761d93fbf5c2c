"""`t2s-fast infer --repair resample`: a scripted generator at the engine seam answers the greedy request and the
repair samples; the CLI must print only the chosen SQL on stdout, one repair line on stderr, generate the samples
in one call (distinct seeds, the repair temperature, the greedy prompt), and not repair SQL that executes."""

from __future__ import annotations

import sqlite3

import pytest

from t2s_fast.cli import main
from t2s_fast.generate.base import GenResult

GREEDY_FAILS = "SELECT nme FROM singer WHERE age > 30"


class FakeTokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **kwargs):
        return "\n".join(m["content"] for m in messages) + "\nassistant:"


class ScriptedGenerator:
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


def run_infer(monkeypatch, db, gen: ScriptedGenerator, *flags: str) -> dict:
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
    gen = ScriptedGenerator(GREEDY_FAILS, samples)
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
    gen = ScriptedGenerator(GREEDY_FAILS, ["SELECT count(*) FROM singer", "SELECT name FROM singer"])
    run_infer(monkeypatch, db, gen, "--repair", "resample", "--repair-k", "2")
    out, err = capsys.readouterr()
    assert out == "SELECT count(*) FROM singer\n" and "2 samples, 2 execute, chose sample 1 (1 votes)" in err
    assert gen.calls[1][1].temperature == 0.8  # the default --repair-temperature


def test_greedy_sql_that_executes_is_printed_without_sampling(monkeypatch, db, capsys):
    gen = ScriptedGenerator("SELECT name FROM singer WHERE age > 99", [])  # executes (no rows): kept
    run_infer(monkeypatch, db, gen, "--repair", "resample")
    out, err = capsys.readouterr()
    assert out == "SELECT name FROM singer WHERE age > 99\n" and "repair" not in err
    assert len(gen.calls) == 1


def test_greedy_sql_stays_when_no_sample_executes(monkeypatch, db, capsys):
    gen = ScriptedGenerator(GREEDY_FAILS, ["SELECT x FROM nowhere", "SELEC name", ""])
    run_infer(monkeypatch, db, gen, "--repair", "resample", "--repair-k", "3")
    out, err = capsys.readouterr()
    assert out == GREEDY_FAILS + "\n"
    assert "repair: greedy SQL failed (no such column: nme); 3 samples, 0 execute, kept the greedy SQL" in err


def test_repair_none_prints_a_failing_greedy_sql_as_before(monkeypatch, db, capsys):
    gen = ScriptedGenerator(GREEDY_FAILS, [])
    opened = run_infer(monkeypatch, db, gen, "--repair", "none")
    out, err = capsys.readouterr()
    assert out == GREEDY_FAILS + "\n" and "repair" not in err
    assert len(gen.calls) == 1 and opened["batch_size"] == 1


def test_with_a_sqlite_db_a_failing_greedy_sql_is_repaired_by_default(monkeypatch, db, capsys):
    """No --repair: auto is resample with --db on SQLite, --repair-k 8 samples at 0.8."""
    samples = ["SELECT x FROM nowhere"] * 5 + ["SELECT name FROM singer WHERE age > 30"] * 3
    gen = ScriptedGenerator(GREEDY_FAILS, samples)
    opened = run_infer(monkeypatch, db, gen)
    out, err = capsys.readouterr()
    assert out == "SELECT name FROM singer WHERE age > 30\n"
    assert "repair: greedy SQL failed (no such column: nme); 8 samples, 3 execute, chose sample 6 (3 votes)" in err
    assert len(gen.calls) == 2 and opened["batch_size"] == 8 and gen.calls[1][1].temperature == 0.8


def test_without_a_db_the_default_is_greedy_alone_and_no_error(tmp_path, monkeypatch, capsys):
    """--schema-file: nothing to execute on, so auto is none (an explicit --repair resample is refused)."""
    gen = ScriptedGenerator(GREEDY_FAILS, [])
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


class WatchedGenerator(ScriptedGenerator):
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
