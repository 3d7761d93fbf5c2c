"""`t2s-fast ablate`: many eval arms through ONE engine on a held-out set, the choice per group made there, the
final set only reported, resumable. The engine is the scripted generator of the repair tests (its answers are
known, so the EX of every arm and the winner are known); make_generator is counted to prove one engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_repair import GOLD, QUESTIONS, ScriptedGenerator, suite  # noqa: F401 - `suite` is a fixture

from t2s_fast.errors import T2SError
from t2s_fast.evaluate.ablation import ablate
from t2s_fast.evaluate.ablation_config import AblationConfig, check_ablation

ARMS = [{"name": "greedy", "group": "single"},  # 1 of 4 right, 3 do not execute
        {"name": "resample-k3", "group": "single", "repair": "resample", "repair_k": 3, "repair_temperature": 0.9},
        {"name": "maj2-t0.7", "group": "vote", "n_samples": 2, "temperature": 0.7}]
# requests each arm generates: 4 questions; the repair pass 3 failing x 3; the vote 4 x 2
REQUESTS = {"greedy": 4, "resample-k3": 4 + 9, "maj2-t0.7": 8}


@pytest.fixture
def engines(monkeypatch):
    """Every engine made (through open_generator -> make_generator), each a scripted generator."""
    import t2s_fast.generate.engines as engines_module

    made = []

    def make_generator(backend, **kwargs):
        made.append(ScriptedGenerator(QUESTIONS))
        return made[-1]

    monkeypatch.setattr(engines_module, "make_generator", make_generator)
    return made


def ablation(files, out_dir, tokenizer_dir, *, arms=ARMS, final=None, **eval_over) -> AblationConfig:
    qfile, root = files
    shared = {"base_model": "scripted", "tokenizer": str(tokenizer_dir), "backend": "hf", "include_base": True,
              "suite": "jsonl", "questions": str(qfile), "db_root": str(root), "workers": 0,
              "repair": "none",  # as the shipped files: the baseline arm greedy, an arm's repair overrides it
              **eval_over}
    return AblationConfig(out_dir=str(out_dir), eval=shared, arms=[dict(a) for a in arms], final=final,
                          source="levers.json")


def requests_made(made) -> int:
    return sum(len(reqs) for gen in made for reqs, _ in gen.calls)


def comparable(summary: dict) -> dict:
    """The figures that do not depend on timing or on which session made them."""
    keep = ("name", "group", "changes", "adapters", "ex", "correct", "n", "exec_errors", "delta_ex",
            "generated_tokens", "baseline")
    return {"arms": [{k: r[k] for k in keep} for r in summary["arms"]], "choices": summary["choices"]}


@pytest.mark.slow
def test_arms_share_one_engine_and_the_best_held_out_arm_is_chosen(suite, tmp_path, qwen3_tokenizer_dir, engines):
    out = tmp_path / "ab"
    summary = ablate(ablation(suite, out, qwen3_tokenizer_dir))
    assert len(engines) == 1 and requests_made(engines) == sum(REQUESTS.values())
    rows = {r["name"]: r for r in summary["arms"]}
    assert (rows["greedy"]["correct"], rows["greedy"]["n"], rows["greedy"]["exec_errors"]) == (1, 4, 3)
    assert (rows["resample-k3"]["correct"], rows["resample-k3"]["exec_errors"]) == (2, 1)
    assert rows["resample-k3"]["delta_ex"] == 0.25 and rows["greedy"]["delta_ex"] == 0
    assert rows["resample-k3"]["repair"]["adapters"]["__base__"]["fixed"] == 1
    assert rows["maj2-t0.7"]["generated_tokens"] == 2 * rows["greedy"]["generated_tokens"]
    for name in REQUESTS:  # each arm is an ordinary eval run with its own report
        report = json.loads((out / "arms" / name / "report.json").read_text())
        assert report["adapters"]["__base__"]["correct"] == rows[name]["correct"]
    single, vote = summary["choices"]["single"], summary["choices"]["vote"]
    assert (single["arm"], single["baseline"], single["ex"]) == ("resample-k3", "greedy", 0.5)
    assert vote["arm"] == "maj2-t0.7" and single["chosen_on"] == {"suite": "jsonl", "source": str(suite[0])}
    written = json.loads((out / "ablation.json").read_text())
    assert written["choices"] == summary["choices"] and written["engine_opened"] is True
    md = (out / "ablation.md").read_text()
    assert "| resample-k3 | single | repair=resample, repair_k=3, repair_temperature=0.9 | 50.0% (2/4) | +25.0 |" in md
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_interrupted_ablation_resumes_without_regenerating_and_a_finished_one_opens_no_engine(
        suite, tmp_path, qwen3_tokenizer_dir, engines, monkeypatch):
    whole = ablate(ablation(suite, tmp_path / "whole", qwen3_tokenizer_dir))

    def stop_after_first(name):
        raise KeyboardInterrupt(name)

    out = tmp_path / "ab"
    with pytest.raises(KeyboardInterrupt):
        ablate(ablation(suite, out, qwen3_tokenizer_dir), on_arm_done=stop_after_first)
    engines.clear()
    resumed = ablate(ablation(suite, out, qwen3_tokenizer_dir))
    assert len(engines) == 1 and requests_made(engines) == REQUESTS["resample-k3"] + REQUESTS["maj2-t0.7"]
    assert [r["kept_from_earlier_run"] for r in resumed["arms"]] == [True, False, False]
    assert comparable(resumed) == comparable(whole)
    engines.clear()
    import t2s_fast.generate.engines as engines_module

    monkeypatch.setattr(engines_module, "make_generator", lambda *a, **k: pytest.fail("an engine was opened"))
    again = ablate(ablation(suite, out, qwen3_tokenizer_dir))
    assert again["engine_opened"] is False and comparable(again) == comparable(whole)
    # a changed arm setting: the harness refuses its predictions, and the error names the arm
    changed = [ARMS[0], dict(ARMS[1], repair_temperature=0.5), ARMS[2]]
    with pytest.raises(T2SError, match="levers.json: arm resample-k3: .*repair-temperature"):
        ablate(ablation(suite, out, qwen3_tokenizer_dir, arms=changed))


@pytest.mark.slow
def test_final_set_runs_baseline_and_winner_and_chooses_nothing(suite, tmp_path, qwen3_tokenizer_dir, engines):
    qfile, root = suite
    final_q = tmp_path / "final.jsonl"  # another set: two of the questions
    final_q.write_text("".join(json.dumps({"id": q, "db_id": "concerts", "question": QUESTIONS[q], "sql": GOLD[q]})
                               + "\n" for q in ("q-ok", "q-fixed")))
    final = {"suite": "jsonl", "questions": str(final_q), "db_root": str(root), "groups": ["single", "vote"]}
    plain = ablate(ablation(suite, tmp_path / "plain", qwen3_tokenizer_dir))
    engines.clear()
    out = tmp_path / "ab"
    summary = ablate(ablation(suite, out, qwen3_tokenizer_dir, final=final))
    assert len(engines) == 1 and summary["choices"] == {g: dict(c) for g, c in plain["choices"].items()}
    # single: baseline greedy and winner resample-k3; vote: its one arm is baseline and winner (run once)
    assert list(summary["final"]) == ["greedy", "resample-k3", "maj2-t0.7"]
    f = summary["final"]
    assert (f["greedy"]["correct"], f["greedy"]["n"]) == (1, 2) and f["resample-k3"]["correct"] == 2
    assert f["greedy"]["source"] == str(final_q) and (out / "final" / "maj2-t0.7" / "report.json").is_file()
    assert "## Final set" in (out / "ablation.md").read_text()
    # every arm and final run keeps its per-question file; the winner is compared with its baseline on both sets
    for run in ("arms/greedy", "arms/resample-k3", "final/greedy", "final/resample-k3"):
        assert (out / run / "scored.jsonl.gz").is_file()
    held, fin = summary["paired"]["single"]["heldout"], summary["paired"]["single"]["final"]
    assert (held["a"], held["b"], held["n"], held["wrong_to_right"], held["right_to_wrong"]) == (
        "greedy", "resample-k3", 4, 1, 0)
    assert held["diff"] == 0.25 and held["noise"] is True  # one question of four: inside the noise
    assert (fin["n"], fin["diff"]) == (2, 0.5) and fin["file_b"] == str(out / "final/resample-k3/scored.jsonl.gz")
    assert "vote" not in summary["paired"]  # its winner is its baseline
    md = (out / "ablation.md").read_text()
    assert "| heldout | single | greedy | resample-k3 | 4 | 25.0% | 50.0% | +25.0 |" in md and "| noise |" in md


def test_bad_ablations_are_refused_before_anything_runs(suite, tmp_path, qwen3_tokenizer_dir, spider1_dir):
    def check(**kw):
        cfg = ablation(suite, tmp_path / "x", qwen3_tokenizer_dir, **kw)
        return check_ablation(cfg)

    with pytest.raises(T2SError, match="refuses Spider dev"):
        check(suite="spider1", split="dev", questions=None, db_root=None, spider_dir=str(spider1_dir))
    for field, value in (("base_model", "other"), ("questions", "x.jsonl"), ("gpu_memory_utilization", 0.5)):
        with pytest.raises(T2SError, match=f"levers.json: arm bad: {field} is the"):
            check(arms=[ARMS[0], {"name": "bad", field: value}])
    with pytest.raises(T2SError, match="levers.json: arm bad: unknown setting 'n_sample'"):
        check(arms=[{"name": "bad", "n_sample": 2}])
    with pytest.raises(T2SError, match="levers.json: arm bad: n_samples: expected an integer"):
        check(arms=[{"name": "bad", "n_samples": "8"}])
    with pytest.raises(T2SError, match="levers.json: arm bad: --n-samples 2 with --temperature"):
        check(arms=[{"name": "bad", "n_samples": 2}])
    for arms, what in (([ARMS[0], ARMS[0]], "used twice"), ([{"name": "a/b"}], "not usable")):
        with pytest.raises(T2SError, match=what):
            check(arms=arms)
    with pytest.raises(T2SError, match="choose_adapter 'stage1' is not evaluated"):
        check_ablation(AblationConfig(**{**vars(ablation(suite, tmp_path, qwen3_tokenizer_dir)),
                                         "choose_adapter": "stage1"}), check_files=False)
    arms, configs = check(arms=[{"name": "maj8-t0.8", "n_samples": 8, "temperature": 0.8, "seed": 3}])
    assert configs["maj8-t0.8"].seed == 3 and configs["maj8-t0.8"].suite == "jsonl"


def test_choice_ties_go_to_fewer_tokens_then_file_order():
    from t2s_fast.evaluate.ablation_config import Arm
    from t2s_fast.evaluate.ablation_report import choose

    def row(name, ex, tokens):
        return {"name": name, "group": "g", "ex": ex, "correct": 1, "n": 2, "generated_tokens": tokens,
                "adapters": {"a": {"ex": ex}}, "suite": "heldout", "source": "v.jsonl"}

    arms = [Arm(n, "g", {}) for n in "xyz"]
    assert choose(arms, [row("x", 0.5, 90), row("y", 0.5, 80), row("z", 0.4, 10)], "a")["g"]["arm"] == "y"
    assert choose(arms, [row("x", 0.5, 80), row("y", 0.5, 80), row("z", 0.4, 10)], "a")["g"]["arm"] == "x"


def test_cli_dry_run_lists_the_example_arms_and_a_bad_file_exits_2(tmp_path, monkeypatch, capsys):
    from t2s_fast.cli import main

    example = Path(__file__).parents[1] / "configs" / "ablate" / "levers-qwen2.5-coder-0.5b.json"
    monkeypatch.chdir(tmp_path)  # none of the example's files exist here: the dry run does not need them
    main(["ablate", "--config", str(example), "--dry-run", "--out-dir", "elsewhere"])
    printed = capsys.readouterr().out
    assert "resample-k4 [single]: {'repair': 'resample', 'repair_k': 4}" in printed
    n_arms = len(json.loads(example.read_text())["arms"])
    assert f"{n_arms} arm(s) in 3 group(s), out_dir elsewhere" in printed
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(example.read_text()), "arms": [{"name": "x", "base_model": "y"}]}))
    for argv in (["--config", str(bad), "--dry-run"], ["--config", "missing.json", "--dry-run"]):
        with pytest.raises(SystemExit) as exc:
            main(["ablate", *argv])
        assert exc.value.code == 2
    assert f"{bad}: arm x: base_model" in capsys.readouterr().err


def _ablation_files() -> list[Path]:
    """The shipped example (configs/ablate/) and the files past results ran (records/configs/ablate/)."""
    root = Path(__file__).parents[1]
    return sorted([*(root / "configs" / "ablate").glob("*.json"),
                   *(root / "records" / "configs" / "ablate").glob("*.json")])


def test_every_shipped_ablation_file_is_valid(tmp_path, monkeypatch, capsys):
    from t2s_fast.cli import main

    files = _ablation_files()
    assert len(files) >= 4
    monkeypatch.chdir(tmp_path)
    for f in files:
        main(["ablate", "--config", str(f), "--dry-run"])
        n_arms = len(json.loads(f.read_text())["arms"])
        assert f"{n_arms} arm(s) in" in capsys.readouterr().out, f


def test_every_shipped_ablation_file_keeps_its_baselines_greedy():
    """The shipped files pin repair none in the shared settings (their greedy / maj8 baselines were measured
    before repair became eval's default); an arm that sets repair overrides it, on the arms' set and the final."""
    from t2s_fast.configs import load_config
    from t2s_fast.evaluate.ablation_config import final_config

    files = _ablation_files()
    assert files
    for f in files:
        cfg = AblationConfig(**load_config(f, AblationConfig), source=str(f))
        assert cfg.eval.get("repair") == "none", f
        arms, configs = check_ablation(cfg, check_files=False)
        assert any("repair" not in a.overrides for a in arms), f
        for a in arms:
            want = a.overrides.get("repair", "none")
            assert configs[a.name].repair == want, (f, a.name)
            if cfg.final is not None:
                assert final_config(cfg, a, check_files=False).repair == want, (f, a.name)
    # without the pin, an arm gets eval's default: resample on the held-out set (SQLite)
    cfg = AblationConfig(**load_config(files[0], AblationConfig), source=str(files[0]))
    cfg.eval = {k: v for k, v in cfg.eval.items() if k != "repair"}
    arms, configs = check_ablation(cfg, check_files=False)
    assert {configs[a.name].repair for a in arms if "repair" not in a.overrides} == {"resample"}


@pytest.mark.slow
def test_a_finished_arm_is_kept_across_the_repair_k_default_change(suite, tmp_path, qwen3_tokenizer_dir, engines):
    """repair_k and repair_temperature change nothing when no repair runs: an arm.json written when the default
    repair_k was 4 still matches, so its report and wall seconds are kept."""
    out = tmp_path / "ab"
    ablate(ablation(suite, out, qwen3_tokenizer_dir, arms=ARMS[:1]))
    arm_file = out / "arms" / "greedy" / "arm.json"
    done = json.loads(arm_file.read_text())
    assert (done["settings"]["repair"], done["settings"]["repair_k"]) == ("none", 8)
    done["settings"]["repair_k"] = 4
    arm_file.write_text(json.dumps(done))
    again = ablate(ablation(suite, out, qwen3_tokenizer_dir, arms=ARMS[:1]))
    assert [r["kept_from_earlier_run"] for r in again["arms"]] == [True]
    assert again["arms"][0]["wall_seconds"] == done["wall_seconds"]


@pytest.mark.slow
def test_vllm_path_one_engine_for_arms_and_final_on_spider_dev(suite, tmp_path, fake_vllm, spider1_dir,
                                                               qwen3_tokenizer_dir):
    """The real engine path (open_generator -> VLLMGenerator, a fake vllm underneath): one engine for the held-out
    arms and the final Spider dev runs; 'good' answers the gold SQL, so it is chosen and reported on dev."""
    from test_generate import gold_by_question, make_responder, write_adapter

    golds = {**gold_by_question(spider1_dir), **{QUESTIONS[q]: GOLD[q] for q in QUESTIONS}}
    fake_vllm.RESPONDER = make_responder(golds)
    adapters = [f"good={write_adapter(tmp_path / 'good', r=4)}", f"bad={write_adapter(tmp_path / 'bad', r=8)}"]
    cfg = ablation(suite, tmp_path / "ab", qwen3_tokenizer_dir, arms=ARMS[:1] + ARMS[2:], backend="vllm",
                   base_model=str(qwen3_tokenizer_dir), include_base=False, adapters=adapters,
                   final={"spider_dir": str(spider1_dir), "dbs": ["concert_singer"], "limit": 3, "groups": ["vote"]})
    summary = ablate(cfg)
    assert len(fake_vllm.CALLS["engines"]) == 1 and summary["choose_adapter"] == "good"
    assert [(r["name"], r["ex"], r["adapters"]["bad"]["ex"]) for r in summary["arms"]] == [
        ("greedy", 1.0, 0.0), ("maj2-t0.7", 1.0, 0.0)]
    final = summary["final"]["maj2-t0.7"]
    assert (final["suite"], final["split"], final["ex"], final["n"]) == ("spider1", "dev", 1.0, 3)
    assert summary["choices"]["vote"]["chosen_on"]["suite"] == "jsonl"
