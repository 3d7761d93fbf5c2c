"""One CLI mechanism (t2s_fast/cli_options.py): every command's flags come from its config dataclasses, and every
command takes --config FILE with the same fields; flags given on the command line override the file; an unknown
key or a wrong type is exit 2 naming the file and the key."""

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
