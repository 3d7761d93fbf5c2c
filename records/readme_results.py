"""The README's figures come from committed per-question files: regenerate its results table, check its figures.

    python -m records.readme_results --write README.md   # regenerate the table between the markers
    python -m records.readme_results --check README.md   # exit 1 naming each line whose figure no file backs

**The table.** ``records/readme_results.json`` lists the rows: each names a variant, a model, the committed
per-question file (``scored.jsonl.gz``, as `t2s-fast eval` writes it) and the adapter in that file; optionally a
note, another row of the same model to compare with (``compare_to``: that row's ``variant``) and a ``short`` name
that the compared rows show. ``--write``
replaces what lies between ``<!-- results-table:start -->`` and ``<!-- results-table:end -->`` with the table
computed from those files: EX, correct / n, the difference with the compared row and its 95% paired bootstrap
interval (`t2s_fast.evaluate.paired`; "noise" when it holds 0), and the file (``path#adapter``). To add a row:
commit the run's ``scored.jsonl.gz``, add an entry to the JSON file, run ``--write``, commit README.md.

**The rule ``--check`` holds.** EX is always quoted with one decimal, so a figure is any ``NN.N%`` in README.md
outside fenced code blocks. Each must sit on a line that names a committed per-question file: a path, relative to
the repository root, of a committed ``scored.jsonl.gz`` (``path#adapter`` limits it to that adapter), or of a
committed folder holding some. The figure must equal, to its one decimal, the EX of an adapter of one of the
named files (correct / n over the questions the report counts). The table between the markers must also be
what ``--write`` would write. Anything else is reported as ``README.md:LINE: ...`` and the check exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"
SPEC = Path(__file__).with_name("readme_results.json")
PER_QUESTION = "scored.jsonl.gz"
FIGURE = re.compile(r"(?<![\w.])(\d+\.\d)%")
PATH = re.compile(r"[A-Za-z0-9_.@+-]+(?:/[A-Za-z0-9_.@+-]+)+/?(?:#[A-Za-z0-9_.@+-]+)?")


class Problem(Exception):
    """A spec or README that cannot be read: the message names the file."""


# ---------------------------------------------------------------- files and figures
def committed_files(root: Path) -> set[str]:
    """The files git tracks under ``root`` (relative paths); outside a git work tree, every file on disk."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
        return {p for p in out.decode("utf-8").split("\0") if p}
    except (OSError, subprocess.CalledProcessError):
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


class Files:
    """EX per adapter of committed per-question files, read once each."""

    def __init__(self, root: Path, committed: set[str]):
        self.root, self.committed, self._ex = root, committed, {}

    def per_question_files(self, named: str) -> list[str]:
        """The committed per-question files a path names: itself, or those under the folder it names."""
        named = named.rstrip("/")
        if named.endswith(PER_QUESTION):
            return [named] if named in self.committed else []
        return sorted(p for p in self.committed if p.startswith(named + "/") and p.endswith("/" + PER_QUESTION))

    def ex(self, path: str) -> dict[str, tuple[int, int]]:
        """{adapter: (correct, n)} of one per-question file."""
        if path not in self._ex:
            from t2s_fast.evaluate.paired import adapters_of, ex_of, read_per_question

            recs = read_per_question(self.root / path)
            self._ex[path] = {a: ex_of(recs, a) for a in adapters_of(recs)}
        return self._ex[path]

    def records(self, path: str) -> list[dict]:
        from t2s_fast.evaluate.paired import read_per_question

        return read_per_question(self.root / path)


def pct(correct: int, n: int) -> str:
    return f"{100 * correct / n:.1f}"


def sources(line: str, files: Files) -> list[tuple[str, str | None]]:
    """(per-question file, adapter or None for any) for each committed one the line names."""
    out = []
    for token in PATH.findall(line):
        path, _, adapter = token.partition("#")
        out += [(p, adapter or None) for p in files.per_question_files(path)]
    return out


def check_lines(lines: list[str], files: Files, name: str = "README.md") -> list[str]:
    """``NAME:LINE: why`` for each figure no per-question file named on its line backs."""
    problems, fenced = [], False
    for lineno, line in enumerate(lines, start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        figures = FIGURE.findall(line)
        if fenced or not figures:
            continue
        named = sources(line, files)
        backing = {}
        for path, adapter in named:
            for a, (correct, n) in files.ex(path).items():
                if n and (adapter is None or a == adapter):
                    backing.setdefault(pct(correct, n), f"{path}#{a}")
        for fig in figures:
            if fig in backing:
                continue
            if not named:
                why = "names no committed per-question file (scored.jsonl.gz, or a folder holding one)"
            else:
                shown = ", ".join(f"{p}#{a or '*'}" for p, a in named)
                why = f"matches no adapter's EX in the per-question file(s) it names ({shown})"
            problems.append(f"{name}:{lineno}: {fig}% {why}")
    return problems


# ---------------------------------------------------------------- the table
def load_spec(path: Path = SPEC) -> list[dict]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Problem(f"{path}: cannot read its rows ({exc})") from None
    for i, row in enumerate(rows):
        missing = [k for k in ("variant", "model", "file", "adapter") if not isinstance(row, dict) or k not in row]
        if missing:
            raise Problem(f"{path}: row {i}: missing {', '.join(missing)}")
    return rows


def render_table(rows: list[dict], files: Files, spec: Path = SPEC) -> list[str]:
    """The table's lines, computed from the per-question files the rows name."""
    from t2s_fast.evaluate.paired import compare_adapters, verdict

    by_key = {(r["model"], r["variant"]): r for r in rows}
    out = [("| variant | model | EX (Spider dev) | correct / n | Δ vs (pts, 95% paired CI) | notes "
            "| per-question file |"), "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        if r["file"] not in files.committed:
            raise Problem(f"{spec}: row {i} ({r['variant']}, {r['model']}): {r['file']} is not a committed file")
        ex = files.ex(r["file"])
        if r["adapter"] not in ex:
            raise Problem(f"{spec}: row {i}: adapter {r['adapter']!r} is not in {r['file']} "
                          f"(adapters: {', '.join(ex)})")
        correct, n = ex[r["adapter"]]
        delta = ""
        if r.get("compare_to"):
            base = by_key.get((r["model"], r["compare_to"]))
            if base is None:
                raise Problem(f"{spec}: row {i}: compare_to {r['compare_to']!r} is no row of model {r['model']!r}")
            c = compare_adapters(files.records(base["file"]), base["adapter"], files.records(r["file"]), r["adapter"])
            delta = (f"{base.get('short', base['variant'])}: {100 * c['diff']:+.1f} "
                     f"[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]{' (noise)' if verdict(c) == 'noise' else ''}")
        out.append(f"| {r['variant']} | {r['model']} | {pct(correct, n)}% | {correct}/{n} | {delta} | "
                   f"{r.get('note', '')} | `{r['file']}#{r['adapter']}` |")
    return out


def split_readme(lines: list[str], name: str) -> tuple[int, int]:
    """Indexes of the start and end markers."""
    starts = [i for i, l in enumerate(lines) if l.strip() == START]
    ends = [i for i, l in enumerate(lines) if l.strip() == END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise Problem(f"{name}: needs one {START} line followed by one {END} line")
    return starts[0], ends[0]


def write(readme: Path, files: Files, spec: Path = SPEC) -> None:
    lines = readme.read_text(encoding="utf-8").splitlines()
    s, e = split_readme(lines, str(readme))
    new = lines[:s + 1] + render_table(load_spec(spec), files, spec) + lines[e:]
    readme.write_text("\n".join(new) + "\n", encoding="utf-8")


def check(readme: Path, files: Files, spec: Path = SPEC) -> list[str]:
    lines = readme.read_text(encoding="utf-8").splitlines()
    problems = check_lines(lines, files, readme.name)
    s, e = split_readme(lines, readme.name)
    if lines[s + 1:e] != render_table(load_spec(spec), files, spec):
        problems.append(f"{readme.name}:{s + 1}: the results table is not what {spec.name} and its per-question "
                        f"files give: run `python -m records.readme_results --write {readme.name}`")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m records.readme_results", description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", metavar="README",
                      help="exit 1 naming each figure no committed per-question file backs")
    mode.add_argument("--write", metavar="README", help="regenerate the results table between the markers")
    ap.add_argument("--root", default=".", help="the repository root the README's paths are relative to")
    ap.add_argument("--spec", default=str(SPEC), help="the table's rows (JSON)")
    args = ap.parse_args(argv)
    from t2s_fast.errors import T2SError

    root = Path(args.root).resolve()
    files = Files(root, committed_files(root))
    try:
        if args.write:
            write(Path(args.write), files, Path(args.spec))
            print(f"{args.write}: results table written from {args.spec}")
            return 0
        problems = check(Path(args.check), files, Path(args.spec))
    except (Problem, T2SError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"{args.check}: every figure is backed by a committed per-question file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
