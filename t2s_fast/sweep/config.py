"""The sweep file (`t2s-fast sweep --config FILE`): shared train settings, the variants (a list and/or a grid),
one dollar cap, and the evaluation settings (held-out set to choose on, Spider dev for the final report).

In the spirit of litgpt's config_hub: one JSON file says everything, and configs/sweep/ holds examples. Every
variant is checked here, before anything is trained: a typo in the last variant fails at once, not after
the first five runs were paid for.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, fields
from pathlib import Path

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError
from t2s_fast.evaluate.config import EvalConfig

# TrainConfig fields the sweep sets itself
SWEEP_OWNED = ("output_dir", "resume", "max_cost_usd")
VARIANT_EXTRA = ("name", "replay_ratio")
_SHORT = {"learning_rate": "lr", "num_train_epochs": "ep", "max_steps": "steps", "lora_r": "r", "lora_alpha": "a",
          "replay_ratio": "replay", "lora_dropout": "drop", "seed": "seed"}
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # no '.': PEFT refuses it in adapter names




@dataclass
class SweepConfig:
    FILE_SECTIONS = {"heldout": (EvalConfig, ()), "eval": (EvalConfig, ()), "final": (EvalConfig, ())}

    out_dir: str = _f("", "Sweep folder: sweep_state.json, runs/<variant>/, eval/heldout/, final/, sweep.json/md, "
                          "ex_vs_cost.png.")
    max_cost_usd: float = _f(0.0, "One dollar cap for all the sweep's training: each run gets what is left as its own "
                                  "--max-cost-usd (its budget guard stops it cleanly); a variant that cannot start is "
                                  "recorded as skipped.")
    train: dict = _f({}, "TrainConfig fields shared by every variant (model_name, train_file, eval_file, max_steps, "
                         "save_steps, ...); not output_dir, resume or max_cost_usd, which the sweep sets.", cli="file")
    variants: list = _f([], "A list of variants, each a dict of TrainConfig fields to override (learning_rate, "
                            "num_train_epochs, lora_r, lora_alpha, ...), an optional name, and for stage 2 "
                            "replay_ratio.", cli="file")
    grid: dict = _f({}, "Field -> list of values: every combination is a variant (combined with each listed "
                        "variant when both are given).", cli="file")
    heldout: dict = _f({}, "EvalConfig fields of the set to choose on (default suite heldout: questions = "
                           "prepare's stage1_valid.jsonl, its databases found from db_root / spider_dir / "
                           "prepare_stats.json). Spider dev is refused.", cli="file")
    eval: dict = _f({}, "EvalConfig fields shared by the held-out and the final evaluation (backend, "
                        "max_new_tokens, enforce_eager, vllm_cache_dir, gpu_memory_utilization, ...). repair is "
                        "none unless set here (the sweep chooses on greedy EX; `eval` alone defaults to auto).",
                cli="file")
    final: dict | None = _f(None, "EvalConfig fields of the final report of the chosen adapter, beside the baseline "
                                  "(max_eval_loss's variant, else the first) to compare them question by question "
                                  "(default suite "
                                  "spider1, split dev: give spider_dir). Greedy, then maj@K when n_samples > 1 "
                                  "(with temperature). null: no final report.", cli="file")
    checkpoints: bool = _f(False, "Also evaluate every checkpoint of every variant (the sweep then keeps all "
                                  "checkpoints: save_total_limit none), and choose among them too.")
    min_run_usd: float = _f(0.10, "A variant starts only if at least this much of the cap is left (loading the "
                                  "model is paid before the first step); otherwise it is recorded as skipped.")
    eval_reserve_usd: float = _f(0.0, "Dollars of the cap kept back from training for the evaluations.")
    stage2_prepared_dir: str | None = _f(None, "Stage 2 with replay_ratio variants: the `t2s-fast prepare` folder "
                                               "(stage-1 and Spider-2.0-only files) each ratio's mixed files are "
                                               "written from.")
    isolate: str = _f("auto", "auto|process|none: run each training and evaluation in its own process (auto: on a "
                              "GPU, so one run's memory never stays behind for the next).",
                      choices=("auto", "process", "none"))
    parallel: int = _f(1, "Train this many variants at once, each in its own process (needs isolate process, or "
                          "auto on a GPU). A small model leaves most of a big GPU idle: on an H200, three 0.5B runs "
                          "side by side trained at 40k tok/s each (121k in all) against 75k for one alone. Each run's "
                          "budget is its share "
                          "of what is left of the cap; each run's dollars count the whole GPU for its wall time, so "
                          "with runs side by side their sum overstates the rented time (sweep.md gives both).")
    devices: tuple[int, ...] | None = _f(None, "GPU indices to spread the parallel runs over (comma-separated; a "
                                               "list in the file): each run sees one (CUDA_VISIBLE_DEVICES), the "
                                               "one running the fewest. Default: every run sees the GPUs the "
                                               "sweep sees.", sep=",", metavar="0,1")
    max_eval_loss: float | str | None = _f(
        None, "Choose only among candidates whose eval loss (the run's eval_file, at that checkpoint or the final "
              "adapter) is at most this: a number, or the name of a variant (its final adapter's eval loss; e.g. "
              "the current recipe, so a chosen variant is never worse at what stage 2 is for). Candidates without "
              "an eval loss are then not eligible; if none is eligible, nothing is chosen (error). A re-run of a "
              "finished sweep with a new cap chooses again from the existing evaluations.", metavar="LOSS|VARIANT")
    source: str = _f("", "The config file this came from (set when loaded).", cli=False)

    def validate(self) -> "SweepConfig":
        where = self.source or "sweep config"
        if not self.out_dir:
            raise T2SError(f"{where}: out_dir is required")
        if not self.max_cost_usd or self.max_cost_usd <= 0:
            raise T2SError(f"{where}: max_cost_usd must be a positive dollar cap for the whole sweep")
        if self.isolate not in ("auto", "process", "none"):
            raise T2SError(f"{where}: isolate {self.isolate!r}: choose auto, process or none")
        for key in SWEEP_OWNED:
            if key in self.train:
                raise T2SError(f"{where}: train.{key} is set by the sweep (per variant); remove it")
        if not self.heldout.get("questions") and self.heldout.get("suite", "heldout") in ("heldout", "jsonl"):
            raise T2SError(f"{where}: heldout.questions is required (e.g. data/prepared/stage1_valid.jsonl)")
        if self.eval_reserve_usd < 0 or self.eval_reserve_usd >= self.max_cost_usd:
            raise T2SError(f"{where}: eval_reserve_usd must be at least 0 and below max_cost_usd")
        self.max_eval_loss = _loss_cap(self.max_eval_loss, where)
        if isinstance(self.parallel, bool) or not isinstance(self.parallel, int) or self.parallel < 1:
            raise T2SError(f"{where}: parallel {self.parallel!r}: give the number of runs to train at once (1 or more)")
        if self.parallel > 1 and self.isolate == "none":
            raise T2SError(f"{where}: parallel {self.parallel} runs each variant in its own process; isolate none "
                           "cannot (use auto or process)")
        if self.devices is not None:  # ints from the file or the flag; strings once validated (idempotent)
            if not self.devices or not all(str(d).isdigit() and not isinstance(d, bool) for d in self.devices):
                raise T2SError(f"{where}: devices {list(self.devices)!r}: give GPU indices, e.g. [0, 1] "
                               "(--devices 0,1)")
            self.devices = [str(d) for d in self.devices]  # as CUDA_VISIBLE_DEVICES takes them
        return self


def _loss_cap(cap, where: str) -> float | str | None:
    """max_eval_loss as a number (also when the command line gives it as a string) or a variant's name; the
    name is checked against the variants by check_plan."""
    if cap is None:
        return None
    if isinstance(cap, str):
        try:
            cap = float(cap)
        except ValueError:
            if _NAME_OK.match(cap):
                return cap
            raise T2SError(f"{where}: max_eval_loss {cap!r}: give a number or a variant's name") from None
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0 < cap < float("inf"):
        raise T2SError(f"{where}: max_eval_loss {cap!r}: give a positive number or a variant's name")
    return float(cap)


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict  # TrainConfig fields (and replay_ratio) that differ from the shared train settings


def _label(overrides: dict) -> str:
    parts = [f"{_SHORT.get(k, k)}{format(v, 'g') if isinstance(v, float) else v}" for k, v in overrides.items()]
    return "-".join(parts).replace(".", "p") or "default"  # 2e-4 -> lr0p0002


def expand_variants(cfg: SweepConfig) -> list[Variant]:
    """The listed variants, each crossed with every grid combination, in file order; names unique."""
    from t2s_fast.train.config import TrainConfig

    where = cfg.source or "sweep config"
    allowed = {f.name for f in fields(TrainConfig)} - set(SWEEP_OWNED) | set(VARIANT_EXTRA)
    base = [dict(v) for v in cfg.variants] or [{}]
    keys = list(cfg.grid)
    for k, values in cfg.grid.items():
        if not isinstance(values, list) or not values:
            raise T2SError(f"{where}: grid.{k} must be a non-empty list of values")
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(cfg.grid[k] for k in keys))] or [{}]
    out, seen = [], set()
    for i, v in enumerate(base):
        if not isinstance(v, dict):
            raise T2SError(f"{where}: variants[{i}] must be an object of settings")
        for combo in combos:
            overrides = {**{k: x for k, x in v.items() if k != "name"}, **combo}
            unknown = sorted(set(overrides) - allowed)
            if unknown:
                raise T2SError(f"{where}: variants[{i}]: unknown or sweep-owned setting(s) {', '.join(unknown)}")
            if "name" in v:
                name = str(v["name"]) + (f"-{_label(combo)}" if combo else "")
            else:
                name = _label(overrides)
            if not _NAME_OK.match(name) or name in seen:
                raise T2SError(f"{where}: variant name {name!r} is {'used twice' if name in seen else 'not usable'} "
                               "(letters, digits, '_', '-'); give each variant a unique name")
            seen.add(name)
            out.append(Variant(name, overrides))
    return out


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read a JSON (or YAML) sweep file and check it; unknown keys and wrong types are refused (t2s_fast.configs)."""
    from t2s_fast.configs import load_config

    return SweepConfig(**load_config(path, SweepConfig), source=str(path)).validate()


@dataclass
class SweepRun:
    """How `t2s-fast sweep` runs the file (not a sweep setting)."""

    dry_run: bool = _f(False, "Check the file and list the variants; train nothing.")
    report_only: bool = _f(False, "Choose again and write sweep.json/md/png from the held-out evaluation that "
                                  "finished: no training, no evaluation, no Spider dev run (for a GPU lease that "
                                  "ended before the final report; the same command without it runs the rest).")
