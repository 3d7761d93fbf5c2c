"""The CLI layer: flags and --config files, bad input, exit codes.

- One CLI mechanism (t2s_fast/cli_options.py): every command's flags come from its config dataclasses, and every
  command takes --config FILE with the same fields; flags given on the command line override the file; an unknown
  key or a wrong type is exit 2 naming the file and the key.
- Bad flag values to `eval` and `score`: exit code 2 and a message naming the flag, before anything loads.
- Exit codes a script can rely on: `train` stopped by a signal exits 128 + the signal (Ctrl-C 130, SIGTERM 143)
  after saving; `score` refuses an empty predictions file with 2, as `train` refuses an empty train file.
- Bad bytes and missing models: one-line errors naming the file and line (or the flag), exit 2."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from t2s_fast.cli import cli, main
from t2s_fast.cli_options import options_from
from t2s_fast.configs import setting
from t2s_fast.errors import T2SError
from t2s_fast.jsonl import read_json, read_jsonl


# --- cli_options ---
def _commands() -> dict[str, click.Command]:
    """Every `t2s-fast` command, by its words ("bench train")."""
    ctx = click.Context(cli)
    out = {}
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        subs = cmd.commands.items() if isinstance(cmd, click.Group) else [(None, cmd)]
        for sub, c in subs:
            out[f"{name} {sub}" if sub else name] = c
    return out


@dataclass
class Toy:
    name: str = setting(help="A required name.", required=True)
    count: int = setting(3, "How many.")
    ratio: float = setting(0.5, "A share.")
    verbose: bool = setting(True, "Say more.")
    tags: tuple[str, ...] = setting((), "Tags.", flags=("--tag",))
    modules: tuple[str, ...] = setting(("a", "b"), "Modules.", sep=",")
    mode: str = setting("x", "Mode.", choices=("x", "y"))
    out: Path | None = setting(None, "Where.")
    extra: dict = setting({}, "Only in a file.", cli="file")


@dataclass
class More:
    seed: int = field(default=0, metadata={"help": "Seed."})


@click.command()
@options_from(Toy, More)
def toy_command(toy: Toy, more: More):
    click.echo(json.dumps({**{k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(toy).items()
                              if k != "out"}, "out": str(toy.out), "seed": more.seed}))


def _toy(*args) -> tuple[int, dict | str]:
    result = CliRunner().invoke(toy_command, list(args))
    return result.exit_code, (json.loads(result.output) if result.exit_code == 0 else result.output)


def test_flags_from_the_dataclass_fields():
    code, got = _toy("--name", "n", "--count", "5", "--no-verbose", "--tag", "t1", "--tag", "t2",
                     "--modules", "q, k", "--mode", "y", "--out", "o.jsonl", "--seed", "7")
    assert code == 0, got
    assert got == {"name": "n", "count": 5, "ratio": 0.5, "verbose": False, "tags": ["t1", "t2"],
                   "modules": ["q", "k"], "mode": "y", "extra": {}, "out": "o.jsonl", "seed": 7}
    code, got = _toy("--name", "n")
    assert got["modules"] == ["a", "b"] and got["verbose"] is True and got["out"] == "None"  # the defaults
    code, err = _toy("--name", "n", "--mode", "z")
    assert code == 2 and "'z' is not one of 'x', 'y'" in err
    code, err = _toy("--extra", "{}")
    assert code == 2 and "No such option '--extra'" in err  # file-only field


def test_config_file_values_are_used_and_flags_override_them(tmp_path):
    cfg = tmp_path / "toy.json"
    cfg.write_text(json.dumps({"_comment": "free text", "name": "from-file", "count": 9, "ratio": 1, "verbose": False,
                               "tag": ["f"], "modules": "m1,m2", "extra": {"k": 1}, "seed": 4}))
    code, got = _toy("--config", str(cfg))
    assert code == 0, got
    assert (got["name"], got["count"], got["ratio"], got["verbose"], got["tags"], got["modules"], got["extra"],
            got["seed"]) == ("from-file", 9, 1.0, False, ["f"], ["m1", "m2"], {"k": 1}, 4)
    code, got = _toy("--config", str(cfg), "--count", "2", "--verbose", "--tag", "cli", "--seed", "0")
    assert (got["name"], got["count"], got["verbose"], got["tags"], got["seed"]) == ("from-file", 2, True, ["cli"], 0)


def test_yaml_config_file(tmp_path):
    pytest.importorskip("yaml")
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("name: y\ncount: 11\ntag: [a, b]\n")
    code, got = _toy("--config", str(cfg))
    assert code == 0, got
    assert (got["name"], got["count"], got["tags"]) == ("y", 11, ["a", "b"])


@pytest.mark.parametrize("content, needle", [
    ({"name": "n", "cuont": 2}, "unknown key 'cuont' (did you mean 'count'?)"),
    ({"name": "n", "tags": ["t"]}, "unknown key 'tags' (did you mean 'tag'?)"),  # the field's name: the flag's wins
    ({"name": "n", "count": "two"}, "key 'count': expected an integer, got 'two'"),
    ({"name": "n", "count": True}, "key 'count': expected an integer"),
    ({"name": "n", "tag": "t"}, "key 'tag': expected a list"),
    ({"name": "n", "mode": "z"}, "key 'mode': 'z' is not one of x, y"),
    ({"name": None}, "key 'name': expected a string, not null"),
    (["not", "an", "object"], "expected an object of settings"),
])
def test_bad_config_file_names_the_file_and_the_key(tmp_path, content, needle):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps(content))
    result = CliRunner().invoke(toy_command, ["--config", str(cfg)])
    assert isinstance(result.exception, Exception) and needle in str(result.exception)
    assert str(cfg) in str(result.exception)


def test_a_required_setting_comes_from_the_command_line_or_the_file(tmp_path):
    code, err = _toy("--count", "1")
    assert code == 2 and "Missing option '--name'" in err
    cfg = tmp_path / "n.json"
    cfg.write_text('{"name": "n"}')
    assert _toy("--config", str(cfg))[0] == 0


def test_every_command_has_config_and_refuses_an_unknown_key_with_exit_2(tmp_path, capsys):
    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps({"no_such_setting": 1}))
    commands = _commands()
    assert {"prepare", "prepare-repair", "train", "infer", "merge", "eval", "report", "sweep", "score", "demo",
            "bench train", "bench generate", "bench score", "bench max-context", "bench profile"} <= set(commands)
    for words, cmd in commands.items():
        assert any("--config" in p.opts for p in cmd.params), words
        with pytest.raises(SystemExit) as exc:
            main([*words.split(), "--config", str(cfg)])
        err = capsys.readouterr().err
        assert exc.value.code == 2, (words, err)
        assert "no_such_setting" in err and str(cfg) in err, (words, err)


def test_eval_reads_its_config_file_and_the_command_line_wins(tmp_path, capsys):
    cfg = tmp_path / "eval.json"
    cfg.write_text(json.dumps({"base_model": "some/model", "suite": "jsonl", "questions": str(tmp_path / "q.jsonl"),
                               "db_root": str(tmp_path), "out_dir": str(tmp_path / "run"), "include_base": True,
                               "temperature": -2}))
    for extra, flag in (((), "--temperature -2"), (("--temperature", "-3"), "--temperature -3")):
        with pytest.raises(SystemExit) as exc:
            main(["eval", "--config", str(cfg), *extra])
        assert exc.value.code == 2 and flag in capsys.readouterr().err
    cfg.write_text(json.dumps({"base_model": "m", "timeout": "30"}))
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--config", str(cfg)])
    assert exc.value.code == 2 and "key 'timeout': expected a number, got '30'" in capsys.readouterr().err


def test_score_from_a_config_file(tmp_path, capsys, spider1_dir):
    pred = tmp_path / "preds.jsonl"
    pred.write_text(json.dumps({"db_id": "concert_singer", "gold": "SELECT count(*) FROM singer",
                                "pred": "SELECT count(*) FROM singer"}) + "\n")
    cfg = tmp_path / "score.json"
    cfg.write_text(json.dumps({"pred": str(pred), "spider_dir": str(spider1_dir), "workers": 0, "json": True,
                               "timeout": 5}))
    main(["score", "--config", str(cfg)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ex"] == 1.0


def test_shipped_eval_configs_pass_the_file_check():
    from t2s_fast.configs import load_config
    from t2s_fast.evaluate.config import EvalConfig
    from t2s_fast.paths import REPO_ROOT

    paths = sorted((REPO_ROOT / "configs" / "eval").glob("*.json"))
    assert paths
    for path in paths:
        settings = load_config(path, EvalConfig)
        assert settings["base_model"] and settings["out_dir"], path


def test_shipped_train_configs_are_the_runbooks_two_stages():
    """configs/train/: stage 1 is train's defaults on Qwen3-8B; stage 2 continues stage 1's adapter at half its
    learning rate on the mixed files. Both load as TrainConfig with every key checked."""
    from t2s_fast.configs import load_config
    from t2s_fast.paths import REPO_ROOT
    from t2s_fast.train.config import TrainConfig

    folder = REPO_ROOT / "configs" / "train"
    stage1 = TrainConfig(**load_config(folder / "qwen3-8b-stage1.json", TrainConfig))
    stage2 = TrainConfig(**load_config(folder / "qwen3-8b-stage2.json", TrainConfig))
    defaults = TrainConfig(train_file="x", output_dir="y")
    assert stage1.model_name == stage2.model_name == "Qwen/Qwen3-8B"
    assert stage1.learning_rate == defaults.learning_rate == 2 * stage2.learning_rate
    assert stage1.adapter_path is None and stage2.adapter_path == f"{stage1.output_dir}/adapter"
    assert "stage1_" in stage1.train_file and "stage2_mixed_" in stage2.train_file


def test_every_flag_of_every_command_is_its_config_key(tmp_path, capsys):
    """One rule for all commands: a flag --some-name is the key some_name of --config (given a value of the wrong
    type, the file is refused for the value or for a missing setting, never for the key)."""
    cfg = tmp_path / "settings.json"
    for words, cmd in _commands().items():
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.name in ("config_file", "help"):
                continue
            key = p.opts[0][2:].replace("-", "_")
            cfg.write_text(json.dumps({key: [{"not": "a setting"}]}))
            with pytest.raises(SystemExit):
                main([*words.split(), "--config", str(cfg)])
            err = capsys.readouterr().err
            assert "unknown key" not in err and str(cfg) in err, (words, key, err)


@pytest.mark.parametrize("words, content, needle", [
    ("score", {"timeout_s": 5}, "unknown key 'timeout_s' (did you mean 'timeout'?)"),
    ("score", {"spider-dir": "x"}, "unknown key 'spider-dir' (did you mean 'spider_dir'?)"),
    ("eval", {"adapters": {"a": "x"}}, "unknown key 'adapters' (did you mean 'adapter'?)"),
    ("eval", {"spider_dri": "x"}, "unknown key 'spider_dri' (did you mean 'spider_dir'?)"),
])
def test_a_key_that_is_not_a_flag_name_is_refused_with_the_flags_name(tmp_path, capsys, words, content, needle):
    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps(content))
    with pytest.raises(SystemExit) as exc:
        main([*words.split(), "--config", str(cfg)])
    assert exc.value.code == 2 and needle in capsys.readouterr().err


# --- cli_bad_input ---
def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    return err


def _eval(tmp_path, *extra):
    return ["eval", "--base-model", "some/model", "--suite", "jsonl", "--questions", str(tmp_path / "q.jsonl"),
            "--db-root", str(tmp_path), "--out-dir", str(tmp_path / "run"), *extra]


@pytest.mark.parametrize("extra, flag", [
    (("--include-base", "--temperature", "-2"), "--temperature -2"),
    (("--include-base", "--workers", "-1"), "--workers -1"),
    (("--include-base", "--timeout", "0"), "--timeout 0"),
    (("--include-base", "--timeout", "-5"), "--timeout -5"),
    ((), "--include-base"),  # neither --adapter nor --include-base
])
def test_eval_rejects_bad_values_naming_the_flag(tmp_path, capsys, extra, flag):
    err = _fails(_eval(tmp_path, *extra), capsys)
    assert flag in err
    assert not (tmp_path / "run").exists()


def test_eval_without_adapter_or_include_base_says_how_to_evaluate_the_base(tmp_path, capsys):
    err = _fails(_eval(tmp_path), capsys)
    assert "nothing to evaluate" in err and "--adapter NAME=PATH" in err
    assert "--include-base to evaluate the base model alone" in err


def _preds(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps({"db_id": "concert_singer", "gold": "SELECT count(*) FROM singer",
                                "pred": "SELECT count(*) FROM singer"}) + "\n")
    return path


@pytest.mark.parametrize("extra, flag", [(("--workers", "-1"), "--workers -1"), (("--timeout", "0"), "--timeout 0"),
                                         (("--timeout", "-1"), "--timeout -1")])
def test_score_rejects_bad_values_naming_the_flag(tmp_path, capsys, extra, flag):
    err = _fails(["score", "--pred", str(_preds(tmp_path)), "--spider-dir", str(tmp_path), *extra], capsys)
    assert flag in err


def test_score_out_into_a_missing_folder_creates_it_and_says_so(tmp_path, capsys, spider1_dir):
    out = tmp_path / "new" / "deeper" / "scored.jsonl"
    main(["score", "--pred", str(_preds(tmp_path)), "--spider-dir", str(spider1_dir), "--out", str(out),
          "--workers", "0", "--json"])
    captured = capsys.readouterr()
    assert f"created folder {out.parent} for --out" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["ex"] == 1.0  # stdout stays one JSON object
    assert out.is_file()
    main(["score", "--pred", str(_preds(tmp_path)), "--spider-dir", str(spider1_dir), "--out", str(out),
          "--workers", "0", "--json"])
    assert "created folder" not in capsys.readouterr().err  # only when it was missing


# --- exit_codes ---
@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", 143), (None, 143)])
def test_train_stopped_by_a_signal_exits_128_plus_the_signal(monkeypatch, tmp_path, signal_name, code):
    from t2s_fast.train import trainer

    info = {"stop_reason": "interrupted", "stop_signal": signal_name, "global_step": 3, "tokens_trained": 10,
            "trained_tokens_per_s": 1.0, "cost_usd": 0.0, "adapter_dir": str(tmp_path / "adapter")}
    monkeypatch.setattr(trainer, "train", lambda cfg: info)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--train-file", "t.jsonl", "--output-dir", str(tmp_path)])
    assert exc.value.code == code


def test_a_completed_train_exits_0(monkeypatch, tmp_path):
    from t2s_fast.train import trainer

    monkeypatch.setattr(trainer, "train", lambda cfg: {"stop_reason": "completed", "global_step": 3,
                                                       "tokens_trained": 10, "trained_tokens_per_s": 1.0,
                                                       "cost_usd": 0.0, "adapter_dir": None})
    assert main(["train", "--train-file", "t.jsonl", "--output-dir", str(tmp_path)]) in (None, 0)


def test_score_refuses_an_empty_predictions_file_with_2(tmp_path, capsys, spider1_dir):
    pred = tmp_path / "empty.jsonl"
    pred.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["score", "--pred", str(pred), "--spider-dir", str(spider1_dir), "--workers", "0"])
    assert exc.value.code == 2
    assert f"{pred}: no predictions" in capsys.readouterr().err


# --- jsonl_errors ---
def test_non_utf8_line_names_file_and_line(tmp_path):
    p = tmp_path / "preds.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(T2SError, match=r"preds\.jsonl:2: not valid UTF-8"):
        read_jsonl(p)


def test_a_multibyte_character_cut_at_the_end_is_a_torn_tail(tmp_path):
    p = tmp_path / "store.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "\xc3')  # crash in the middle of a two-byte character
    assert read_jsonl(p, tolerate_torn_tail=True) == [{"a": 1}]
    with pytest.raises(T2SError, match=r"store\.jsonl:2"):
        read_jsonl(p)


def test_non_utf8_json_file(tmp_path):
    p = tmp_path / "tables.json"
    p.write_bytes(b'[{"db_id": "\xff"}]')
    with pytest.raises(T2SError, match=r"tables\.json: not valid UTF-8"):
        read_json(p)


def test_cli_score_on_non_utf8_predictions_exits_2(tmp_path, capsys):
    p = tmp_path / "preds.jsonl"
    p.write_bytes(b'\xff\xfe{"db_id": "x"}\n')
    with pytest.raises(SystemExit) as e:
        main(["score", "--pred", str(p), "--spider-dir", str(tmp_path)])
    assert e.value.code == 2
    assert "preds.jsonl:1: not valid UTF-8" in capsys.readouterr().err


def test_infer_with_a_model_path_that_does_not_load_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schema.sql").write_text("CREATE TABLE t (a INT);")
    (tmp_path / "runs" / "stage1").mkdir(parents=True)  # a folder, but neither a model nor an adapter
    with pytest.raises(SystemExit) as e:
        main(["infer", "--model-path", "runs/stage1", "--question", "How many?", "--schema-file", "schema.sql",
              "--db-id", "t"])
    assert e.value.code == 2
    assert "--model-path runs/stage1: cannot load it" in capsys.readouterr().err


def test_a_crash_mid_timing_append_does_not_break_the_next_session(tmp_path):
    """A torn last line of timings.jsonl is cut on resume, so the next session's appends stay readable."""
    from t2s_fast.evaluate.predictions import PredictionStore

    store = PredictionStore(tmp_path, {"model": "m"})
    store.append([{"key": "a|q1|0"}], {"batch": 0, "tokens": 5})
    with (tmp_path / "timings.jsonl").open("ab") as fh:
        fh.write(b'{"batch": 1, "tok')  # the process died here
    resumed = PredictionStore(tmp_path, {"model": "m"})
    resumed.append([{"key": "a|q2|0"}], {"batch": 1, "tokens": 7})
    assert [t["batch"] for t in resumed.timings()] == [0, 1]
    assert set(resumed.records) == {"a|q1|0", "a|q2|0"}


def test_an_unterminated_string_reads_as_one_phrase(tmp_path):
    from t2s_fast.jsonl import read_json

    path = tmp_path / "cut.json"
    path.write_text('{"a": "abc')
    with pytest.raises(T2SError) as exc:
        read_json(path)
    assert str(exc.value) == f"{path}:1: malformed JSON (Unterminated string starting at column 7)"


def test_a_malformed_yaml_config_is_one_line_naming_the_file_and_line(tmp_path, capsys):
    pytest.importorskip("yaml")
    from t2s_fast.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("pred: x\nworkers: [1, 2\ntimeout: 3\n")
    with pytest.raises(SystemExit) as exc:
        main(["score", "--config", str(path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.strip() == f"error: --config {path}:3: malformed YAML (expected ',' or ']', but got ':' at column 8)"
