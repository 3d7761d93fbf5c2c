"""records/readme_results.py: the README's EX figures are recomputed from committed per-question files; a figure
that differs from its file, or that names none, fails the check naming the README line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DEV_05B = "records/reports/2026-11-29-h200-qwen2.5-coder-0.5b/eval-dev/scored.jsonl.gz"  # stage1: 573/972 = 59.0%


@pytest.fixture(scope="module")
def tool():
    sys.path.insert(0, str(REPO))
    try:
        from records import readme_results
    finally:
        sys.path.remove(str(REPO))
    return readme_results


def _check(tool, tmp_path, text: str) -> tuple[int, str]:
    readme = tmp_path / "README.md"
    readme.write_text(text, encoding="utf-8")
    return tool.main(["--check", str(readme), "--root", str(REPO)])


def test_the_readme_passes_as_a_module_run_from_the_repository_root():
    res = subprocess.run([sys.executable, "-m", "records.readme_results", "--check", "README.md"], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


def test_a_table_figure_that_differs_from_its_file_fails_naming_the_line(tool, tmp_path, capsys):
    lines = README.read_text(encoding="utf-8").splitlines()
    row = next(i for i, line in enumerate(lines) if f"`{DEV_05B}#stage1`" in line)
    assert "| 59.0% |" in lines[row]
    lines[row] = lines[row].replace("| 59.0% |", "| 59.1% |")
    assert _check(tool, tmp_path, "\n".join(lines) + "\n") == 1
    err = capsys.readouterr().err
    assert f"README.md:{row + 1}: 59.1% matches no adapter's EX in the per-question file(s) it names" in err
    assert "the results table is not what readme_results.json and its per-question files give" in err


def test_prose_figures_must_name_their_file_and_match_the_named_adapter(tool, tmp_path, capsys):
    folder = DEV_05B.rsplit("/", 2)[0] + "/"
    good = (f"# t\n\n<!-- results-table:start -->\n<!-- results-table:end -->\n"
            f"stage 1 greedy: 59.0% (`{DEV_05B}#stage1`)\nthe base model: 50.5% (`{folder}`)\n")
    spec = tmp_path / "spec.json"
    spec.write_text('{"rows": []}')
    readme = tmp_path / "README.md"
    readme.write_text(good.replace("<!-- results-table:end -->", "| variant | model | EX (Spider dev) | correct / n | "
                                   "Δ vs (pts, 95% paired CI) | notes | per-question file |\n|---|---|---|---|---|---|"
                                   "---|\n<!-- results-table:end -->"))
    assert tool.main(["--check", str(readme), "--root", str(REPO), "--spec", str(spec)]) == 0, capsys.readouterr().err
    text = readme.read_text()
    readme.write_text(text.replace("59.0% (", "50.5% (") + "a figure with no file: 61.0%\n")
    assert tool.main(["--check", str(readme), "--root", str(REPO), "--spec", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "README.md:7: 50.5% matches no adapter's EX" in err and f"{DEV_05B}#stage1" in err  # base's, not stage1's
    assert "README.md:8" not in err  # a folder names every per-question file under it
    assert "README.md:9: 61.0% names no committed per-question file" in err


def test_write_regenerates_the_committed_table(tool, tmp_path):
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(tool.START)
    end = lines.index(tool.END)
    stale = lines[:start + 1] + ["| old | table |"] + lines[end:]
    readme = tmp_path / "README.md"
    readme.write_text("\n".join(stale) + "\n", encoding="utf-8")
    assert tool.main(["--write", str(readme), "--root", str(REPO)]) == 0
    assert readme.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")


def test_a_row_naming_an_uncommitted_file_is_refused(tool, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text('{"rows": [{"variant": "v", "model": "m", "file": "runs/x/scored.jsonl.gz", "adapter": "a"}]}')
    readme = tmp_path / "README.md"
    readme.write_text(f"{tool.START}\n{tool.END}\n")
    assert tool.main(["--write", str(readme), "--root", str(REPO), "--spec", str(spec)]) == 2
    assert "runs/x/scored.jsonl.gz is not a committed file" in capsys.readouterr().err
