"""Every flag the docs and the GPU drivers use is still accepted by its command: the `t2s-fast ...` (and
`python -m t2s_fast ...`) commands in README.md, bench/README.md, docs/*.md (code blocks and inline code) and
bench/**/*.sh, checked against the options of the command they name; and (marked `records`) the commands the
recorded runs ran, records/reports/*/commands.sh."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from t2s_fast.cli import cli
from t2s_fast.paths import REPO_ROOT

DOCS = ("README.md", "bench/README.md", *sorted(str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.glob("docs/*.md")))
FLAG = re.compile(r"^\[?(--[a-z][a-z0-9-]*)")


def _snippets(text: str, markdown: bool) -> list[str]:
    """Shell text: fenced blocks and inline code of a markdown file, or a whole script; continuations joined."""
    if markdown:
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
        inline = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
        parts = blocks + inline
    else:
        parts = [text]
    return [line for part in parts for line in part.replace("\\\n", " ").splitlines()]


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in prose: plain words are enough to find flags
        return line.split()


def _command_words(words: list[str]) -> list[tuple[click.Command, str, list[str]]]:
    """(command, its name, the words after it) for each `t2s-fast CMD` / `-m t2s_fast CMD` in a line."""
    ctx, found = click.Context(cli), []
    for i, w in enumerate(words):
        if not (w == "t2s-fast" or (w == "t2s_fast" and i and words[i - 1] == "-m")) or i + 1 >= len(words):
            continue
        cmd = cli.get_command(ctx, words[i + 1])
        rest, name = words[i + 2:], words[i + 1]
        if isinstance(cmd, click.Group) and rest and rest[0] in cmd.commands:
            cmd, name, rest = cmd.commands[rest[0]], f"{name} {rest[0]}", rest[1:]
        if cmd is not None and not isinstance(cmd, click.Group):
            found.append((cmd, name, rest))
    return found


def used_flags(files: list[tuple]) -> set[tuple[str, str, click.Command]]:
    out = set()
    for path, markdown in files:
        for line in _snippets(path.read_text(encoding="utf-8"), markdown):
            for cmd, name, rest in _command_words(_words(line)):
                for w in rest:
                    if w == "--" and name == "bench profile":  # the rest: the profiled `train` command's flags
                        name, cmd = "train", cli.get_command(click.Context(cli), "train")
                    elif w in ("--", "|", "&&", ";") or w.startswith(("t2s-fast", "python")):
                        break  # the rest belongs to another command
                    m = FLAG.match(w)
                    if m:
                        out.add((name, m.group(1), cmd))
    return out


def _refused(used) -> list[str]:
    missing = []
    for name, flag, cmd in sorted(used, key=lambda x: x[:2]):
        accepted = {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}
        if flag not in accepted and flag != "--help":
            missing.append(f"t2s-fast {name} {flag}")
    return missing


def test_every_documented_flag_is_accepted():
    assert "docs/training.md" in DOCS and "docs/evaluation.md" in DOCS
    scripts = sorted(REPO_ROOT.glob("bench/**/*.sh"))
    used = used_flags([(REPO_ROOT / d, True) for d in DOCS] + [(p, False) for p in scripts])
    commands = {name for name, _, _ in used}
    assert len(used) > 60 and {"prepare", "train", "eval", "merge", "infer", "score", "sweep", "report",
                               "bench train", "bench max-context", "bench profile"} <= commands, sorted(commands)
    missing = _refused(used)
    assert not missing, missing


@pytest.mark.records
def test_every_recorded_command_is_accepted():
    scripts = sorted(REPO_ROOT.glob("records/reports/*/commands.sh"))
    assert scripts
    missing = _refused(used_flags([(p, False) for p in scripts]))
    assert not missing, missing

