"""The HTML report opens in headless Chromium and its plots render (skipped where Chromium is absent)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from t2s_fast.evaluate.report import render_html


def synthetic_report() -> dict:
    def adapter(name, ex, easy, hard, dbs):
        return {"display_name": name, "path": None, "ex": ex, "n": 40, "correct": int(ex * 40), "not_executable": 0,
                "by_hardness": {"easy": {"n": 20, "ex": easy}, "hard": {"n": 20, "ex": hard}},
                "by_database": {db: {"n": 10, "ex": v} for db, v in dbs.items()},
                "errors": {"runtime": 3}, "extraction": {"n": 40, "changed": 4, "rate": 0.1, "methods": {"plain": 36}},
                "generated_tokens": 800, "mean_generated_tokens": 20.0}

    return {
        "title": "screenshot test",
        "settings": {"base_model": "m", "backend": "hf", "source": "dev.json", "decoding": "greedy",
                     "max_new_tokens": 64,
                     "distinct_handling": "DISTINCT removed", "timeout_s": 30.0, "self_consistency": None},
        "questions": {"selected": 40, "evaluated": 40, "executable": 40, "missing_databases": [],
                      "not_executable": {"count": 0, "reasons": {}, "qids": []}},
        "adapters": {"__base__": adapter("base model", 0.3, 0.5, 0.1, {"singer": 0.4, "pets_1": 0.2}),
                     "stage1": adapter("stage1", 0.7, 0.9, 0.5, {"singer": 0.8, "pets_1": 0.6})},
        "disagreements": {"count": 1, "shown": 1, "rows": [
            {"qid": "dev-0001", "db_id": "singer", "question": "How many singers?",
             "gold": "SELECT count(*) FROM singer",
             "hardness": "easy", "results": {"__base__": {"sql": "SELECT 1", "match": False, "error_kind": None},
                                             "stage1": {"sql": "SELECT count(*) FROM singer", "match": True,
                                                        "error_kind": None}}}]},
    }


def screenshot(chromium: str, html_path, png_path, profile) -> None:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={png_path}", "--window-size=1280,2000",
           f"file://{html_path}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def colored_pixels(png_path) -> int:
    """Saturated pixels: the bars of the plots (text is black/grey, table cells pale)."""
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png_path))[..., :3]
    saturation = img.max(axis=2) - img.min(axis=2)
    return int((saturation > 0.35).sum())


@pytest.mark.slow
def test_report_html_renders_plots_in_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("headless Chromium is not installed")
    report = synthetic_report()
    with_plots, without = tmp_path / "with.html", tmp_path / "without.html"
    with_plots.write_text(render_html(report))
    without.write_text(render_html(report, plots=False))
    assert "data:image/png;base64," in with_plots.read_text()
    screenshot(chromium, with_plots, tmp_path / "with.png", tmp_path / "profile1")
    screenshot(chromium, without, tmp_path / "without.png", tmp_path / "profile2")
    plotted, plain = colored_pixels(tmp_path / "with.png"), colored_pixels(tmp_path / "without.png")
    assert plotted > 20_000, f"only {plotted} coloured pixels: the plots did not render"
    assert plotted > 10 * max(plain, 1000)
