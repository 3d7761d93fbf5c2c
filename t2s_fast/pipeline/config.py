"""The run file (`t2s-fast run --config FILE`): the model, one dollar cap, which stages run, and one section per
stage whose keys are that command's own config keys (`prepare`, `train`, `rl`, `eval`, `merge`).

Everything is checked here, before anything starts: an unknown key, a value of the wrong type, a setting the
pipeline owns (a stage's folder, its budget, the model) or a data folder that is not there is a T2SError naming
the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from t2s_fast.configs import check_settings, load_config
from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError

STAGES = ("prepare", "stage1", "stage2", "stage3", "choose", "eval", "merge", "report")
TRAINING = ("stage1", "stage2", "stage3")
DEFAULT_ON = {s: s != "stage3" for s in STAGES}  # RL is opt-in
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # an eval variant's folder under OUT_DIR/eval
# keys each section may not set: the pipeline sets them (folders, budgets, the model, resuming)
OWNED = {
    "prepare": (),
    "stage1": ("output_dir", "resume", "max_cost_usd", "model_name", "tokenizer", "gpu_hourly_usd"),
    "stage2": ("output_dir", "resume", "max_cost_usd", "model_name", "tokenizer", "gpu_hourly_usd"),
    "stage3": ("output_dir", "resume", "max_cost_usd", "model_name", "gpu_hourly_usd"),
    "choose": ("base_model", "out_dir", "adapters", "include_base", "checkpoints", "tokenizer"),
    "eval": ("base_model", "out_dir", "adapters", "include_base", "checkpoints", "tokenizer"),
    "merge": ("adapter_path", "output_dir", "base_model"),
}


def section_class(stage: str):
    """The config dataclass whose keys a stage's section takes (the command's own)."""
    if stage == "prepare":
        from t2s_fast.data.prepare import PrepareConfig

        return PrepareConfig
    if stage in ("stage1", "stage2"):
        from t2s_fast.train.config import TrainConfig

        return TrainConfig
    if stage == "stage3":
        return rl_config_class()
    if stage in ("choose", "eval"):
        from t2s_fast.evaluate.config import EvalConfig

        return EvalConfig
    if stage == "merge":
        from t2s_fast.merge import MergeConfig

        return MergeConfig
    raise KeyError(stage)


def rl_config_class():
    """RLConfig of the RL stage, imported only when stage 3 is on (its module may not be in this build)."""
    try:
        from t2s_fast.rl.config import RLConfig
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("t2s_fast"):
            raise T2SError("stage3 (RL) needs t2s_fast.rl, which this build does not have; set stages.stage3: "
                           "false") from None
        raise
    return RLConfig


@dataclass
class RunConfig:
    out_dir: str = _f("", "Run folder: run_state.json, status.json, run.log, one folder per stage, "
                          "report.html/md/json.",
                      required=True)
    max_cost_usd: float = _f(0.0, "One dollar cap for the whole run, every stage and restart included: each training "
                                  "stage gets what is left as its own budget; a stage whose projection does not fit "
                                  "what is left is skipped.", required=True)
    model_name: str = _f("Qwen/Qwen3-8B", "Base model of every stage: hub id, local folder, packaged alias "
                                          "(qwen2.5-coder-0.5b, ...), .gguf file or config.json (random init).")
    tokenizer: str | None = _f(None, "Tokenizer folder or id for training and evaluation (default: the model's).")
    gpu_hourly_usd: float = _f(3.44, "Price of one GPU hour: every stage's wall time is paid at it (the GPU bills "
                                     "while data is prepared and adapters are evaluated too).")
    gpus: int = _f(1, "GPUs rented (one host): the dollars count each one's hour. On a CUDA machine stage 1 and "
                      "stage 2 train data parallel over them and the evaluations spread over them (vLLM data "
                      "parallel); stage 3 (RL) runs on one.")
    train_processes: int | None = _f(None, "Processes stage 1 and stage 2 train in, one per GPU (data parallel; each "
                                           "stage keeps a one-GPU run's global batch unless its section sets "
                                           "global_batch_size). Default: gpus on a CUDA machine, else 1.")
    stages: dict = _f({}, "Which stages run, e.g. {stage3: true, merge: false}; default: every stage but stage3 "
                          f"(RL). Stages, in order: {', '.join(STAGES)}.", cli="file")
    prepare: dict = _f({}, "`t2s-fast prepare` keys (spider_dir, spider2_dir, tokenizer, stage2_replay_ratio, ...); "
                           "out_dir defaults to OUT_DIR/prepared.", cli="file")
    stage1: dict = _f({}, "`t2s-fast train` keys of stage 1 (default train_file/eval_file: the prepared "
                          "stage1_{train,valid}.jsonl); not output_dir, resume, max_cost_usd, model_name, tokenizer, "
                          "gpu_hourly_usd, which the run sets.", cli="file")
    stage2: dict = _f({}, "`t2s-fast train` keys of stage 2 (default: the prepared stage2_mixed files, adapter_path = "
                          "stage 1's adapter).", cli="file")
    stage3: dict = _f({}, "`t2s-fast rl` keys of the RL stage (default adapter_path: the last trained stage's "
                          "adapter, or `stage1` / `stage2` for that stage's; train_file: the prepared "
                          "stage1_train.jsonl; db_root: prepare.spider_dir/database).",
                      cli="file")
    choose: dict = _f({}, "`t2s-fast eval` keys of the held-out evaluation every checkpoint of every training stage is "
                          "chosen on (default suite heldout on the prepared stage1_valid.jsonl, repair none).",
                      cli="file")
    eval: dict = _f({}, "`t2s-fast eval` keys of the Spider dev evaluation of the base, each stage and the choice "
                        "(default suite spider1, split dev, spider_dir = prepare.spider_dir; eval's default repair).",
                    cli="file")
    eval_variants: dict = _f({}, "More Spider dev evaluations, through the eval stage's one engine after its own: NAME "
                                 "-> the `eval` keys that change, e.g. {greedy: {repair: none}, maj8: {repair: none, "
                                 "n_samples: 8, temperature: 0.8}}. Each writes OUT_DIR/eval/NAME/ (its per-question "
                                 "file among them). Keys that make the engine (model, dtype, memory share, "
                                 "parallelism, batch size) cannot change.", cli="file")
    merge: dict = _f({}, "`t2s-fast merge` keys (dtype, tokenizer); the chosen adapter goes to OUT_DIR/merged.",
                     cli="file")
    source: str = _f("", "The run file this came from (set when loaded).", cli=False)

    def where(self, key: str = "") -> str:
        return f"{self.source or 'run config'}: {key}" if key else (self.source or "run config")

    def stage_on(self, stage: str) -> bool:
        return bool({**DEFAULT_ON, **self.stages}[stage])

    @property
    def prepared_dir(self) -> Path:
        return Path(self.prepare.get("out_dir") or Path(self.out_dir) / "prepared")

    @property
    def spider_dir(self) -> str | None:
        spider = self.prepare.get("spider_dir")
        return str(spider) if spider else None

    def stage_dir(self, stage: str) -> Path:
        return Path(self.out_dir) / ("merged" if stage == "merge" else stage)

    def validate(self) -> "RunConfig":
        """Every check that needs nothing to have run: keys, types, owned keys, numbers, data folders."""
        if not self.out_dir:
            raise T2SError(f"{self.where('out_dir')} is required")
        if self.max_cost_usd is None or self.max_cost_usd <= 0:
            raise T2SError(f"{self.where('max_cost_usd')} must be a positive dollar cap for the whole run")
        if self.gpu_hourly_usd < 0 or self.gpus < 1:
            raise T2SError(f"{self.where('gpu_hourly_usd')}/gpus: a price of 0 or more and at least 1 GPU")
        if self.train_processes is not None and self.train_processes < 1:
            raise T2SError(f"{self.where('train_processes')}: at least 1 (got {self.train_processes})")
        for stage, on in self.stages.items():
            if stage not in STAGES or not isinstance(on, bool):
                raise T2SError(f"{self.where(f'stages.{stage}')}: stages maps a stage ({', '.join(STAGES)}) to true "
                               f"or false, got {on!r}")
        for stage in OWNED:
            self._check_section(stage)
        self._check_eval_variants()
        self._check_folders()
        return self

    def _check_section(self, stage: str) -> None:
        section = getattr(self, stage)
        if stage == "stage3" and not self.stage_on("stage3"):
            return  # the RL module may not exist in this build; its section is read only when it runs
        typed = check_settings(section, self.where(stage), section_class(stage))
        owned = sorted(set(section) & set(OWNED[stage]))
        if owned:
            raise T2SError(f"{self.where(f'{stage}.{owned[0]}')} is set by the run (one model, one folder and one "
                           "budget per stage); remove it" + (" and set it at the top" if owned[0] in
                                                             ("model_name", "tokenizer", "gpu_hourly_usd") else ""))
        setattr(self, stage, typed)

    def _check_eval_variants(self) -> None:
        """Each variant is a folder name and a set of `eval` keys that leave the shared engine as it is."""
        from t2s_fast.evaluate.config import EvalConfig
        from t2s_fast.evaluate.lazy_engine import ENGINE_FIELDS

        if not isinstance(self.eval_variants, dict):
            raise T2SError(f"{self.where('eval_variants')}: expected a mapping NAME -> {{eval key: value}}, got "
                           f"{self.eval_variants!r}")
        typed = {}
        for name, changes in self.eval_variants.items():
            where = self.where(f"eval_variants.{name}")
            if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
                raise T2SError(f"{where}: a variant's name is its folder under OUT_DIR/eval: letters, digits, "
                               "'.', '_' or '-'")
            if not isinstance(changes, dict) or not changes:
                raise T2SError(f"{where}: expected the `eval` keys this variant changes, e.g. {{repair: none}}, got "
                               f"{changes!r}")
            typed[name] = check_settings(changes, where, EvalConfig)
            fixed = sorted(set(typed[name]) & (set(OWNED["eval"]) | set(ENGINE_FIELDS)))
            if fixed:
                raise T2SError(f"{self.where(f'eval_variants.{name}.{fixed[0]}')}: every variant runs through the "
                               "eval stage's one engine and on its models; set it in `eval` instead")
        self.eval_variants = typed

    def _check_folders(self) -> None:
        """The data a stage reads is there (or is written by an earlier stage that runs)."""
        if self.stage_on("prepare"):
            if not self.prepare.get("spider_dir"):
                raise T2SError(f"{self.where('prepare.spider_dir')} is required when the prepare stage runs (the "
                               "Spider 1.0 folder); or set stages.prepare: false and prepare.out_dir to a prepared "
                               "folder")
            for key in ("spider_dir", "spider2_dir"):
                folder = self.prepare.get(key)
                if folder and not Path(folder).is_dir():
                    raise T2SError(f"{self.where(f'prepare.{key}')}: {folder}: no such folder")
        elif any(self.stage_on(s) for s in ("stage1", "stage2", "stage3", "choose")):
            if not self.prepared_dir.is_dir():
                raise T2SError(f"{self.where('prepare.out_dir')}: {self.prepared_dir}: no such folder (the prepare "
                               "stage is off, so the prepared files must already be there)")
        for stage in ("choose", "eval"):
            section = getattr(self, stage)
            for key in ("spider_dir", "db_root"):
                folder = section.get(key)
                if self.stage_on(stage) and folder and not Path(folder).is_dir():
                    raise T2SError(f"{self.where(f'{stage}.{key}')}: {folder}: no such folder")
        if self.stage_on("eval") and not (self.eval.get("spider_dir") or self.spider_dir or self.eval.get("questions")):
            raise T2SError(f"{self.where('eval.spider_dir')} is required for the Spider dev evaluation (or "
                           "prepare.spider_dir)")


def load_run_config(path: str | Path) -> RunConfig:
    """Read and check a run file; a T2SError names the file and the key."""
    return RunConfig(**load_config(path, RunConfig), source=str(path)).validate()


@dataclass
class RunOptions:
    """How `t2s-fast run` runs the file (not part of the run's settings: changing them re-runs nothing)."""

    on_finish: str | None = _f(None, "Shell command run when the run ends, however it ends (done, over_budget, failed, "
                                     "interrupted): e.g. 'poweroff' or a notification. It sees T2S_RUN_OUTCOME and "
                                     "T2S_RUN_DIR.", metavar="CMD")
    dry_run: bool = _f(False, "Check the file and print the plan; run nothing.")
