"""The stages of `t2s-fast run`, each calling the project's own plain function with its own config dataclass,
built from the run file's section for it (the same keys as that command's config file) and the run's folders:

| stage | function | folder |
|---|---|---|
| prepare | `t2s_fast.data.prepare.prepare(PrepareConfig)` | prepare.out_dir (default OUT_DIR/prepared) |
| stage1, stage2 | `t2s_fast.train.trainer.train(TrainConfig)` | OUT_DIR/stage1, OUT_DIR/stage2 |
| stage3 | `t2s_fast.rl.trainer.train_rl(RLConfig)` | OUT_DIR/stage3 |
| choose | `evaluate(EvalConfig)` of every checkpoint on held-out data, then the sweep's rule | OUT_DIR/choose |
| eval | `evaluate(EvalConfig)` of the base, each stage and the choice on Spider dev | OUT_DIR/eval |
| eval | the same for each of `eval_variants` (e.g. greedy, maj@8), through the same engine | OUT_DIR/eval/NAME |
| merge | `t2s_fast.merge.merge` of the chosen adapter | OUT_DIR/merged |

Each stage says what it runs with (`settings`: compared on a re-run), what it reads (`inputs`: fingerprints),
what it is projected to cost (`project`), whether it can run (`missing`: an input an earlier stage did not
produce), and runs (`run`). On a GPU, training and evaluation each run in their own process (sweep/isolate.py),
so no stage's memory or patched libraries stay behind for the next.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.pipeline.config import TRAINING, RunConfig, section_class
from t2s_fast.pipeline.plan import (
    MERGE_S,
    PREPARE_S,
    REPORT_S,
    Device,
    Projection,
    _priced,
    count_questions,
    project_eval,
    project_rl,
    project_training,
)
from t2s_fast.pipeline.state import RunState, adapter_fingerprint, file_fingerprint, folder_fingerprint, jsonable

log = logging.getLogger(__name__)

# budgets, resuming and the price of an hour differ between sessions by design, and change nothing a stage makes
NOT_COMPARED = ("max_cost_usd", "resume", "force", "gpu_hourly_usd")


class Interrupted(Exception):
    """A stage was stopped by a signal; the same command continues it."""


@dataclass
class Context:
    cfg: RunConfig
    state: RunState
    device: Device
    isolate: bool

    def done(self, stage: str) -> bool:
        return self.state.stages.get(stage, {}).get("status") == "done"

    def result(self, stage: str) -> dict:
        return self.state.stages.get(stage, {}).get("result") or {}

    def adapter_of(self, stage: str) -> str | None:
        """A training stage's final adapter, once the stage is done."""
        from t2s_fast.adapters import is_adapter_dir

        path = self.cfg.stage_dir(stage) / "adapter"
        return str(path) if self.done(stage) and is_adapter_dir(path) else None

    def train_processes(self, stage: str) -> int:
        """Processes a training stage runs in: stage 1 and 2 data parallel over the rented GPUs (on a CUDA machine),
        stage 3 in one."""
        if stage == "stage3":
            return 1
        n = self.cfg.train_processes
        return n if n is not None else (self.cfg.gpus if self.device.kind == "cuda" else 1)

    def process_hourly_usd(self, stage: str) -> float:
        """One training process's share of the rented GPUs' hourly price: a trainer meters its processes' hours,
        and a GPU that no process uses bills too."""
        return self.cfg.gpu_hourly_usd * self.cfg.gpus / self.train_processes(stage)

    def trained(self) -> list[str]:
        return [s for s in TRAINING if self.adapter_of(s)]

    def chosen(self) -> dict | None:
        """The chosen adapter: the choice on held-out data, else (choose off or skipped) the last trained stage's."""
        chosen = self.result("choose").get("chosen") if self.done("choose") else None
        if chosen:
            return chosen
        trained = self.trained()
        if not trained:
            return None
        return {"name": f"{trained[-1]}@final", "path": self.adapter_of(trained[-1]),
                "why": "the last trained stage's final adapter (no choice on held-out data ran)"}


def _call(fn, arg, ctx: Context):
    from t2s_fast.sweep.isolate import Interrupted as ChildInterrupted
    from t2s_fast.sweep.isolate import call

    try:
        return call(fn, arg, isolate=ctx.isolate)
    except ChildInterrupted as exc:
        raise Interrupted(str(exc)) from None


def _where(ctx: Context, stage: str) -> str:
    return ctx.cfg.where(stage)


def _build(cls, where: str, **settings):
    try:
        obj = cls(**settings)
    except TypeError as exc:
        raise T2SError(f"{where}: {exc}") from None
    except T2SError as exc:
        raise T2SError(f"{where}: {exc}") from None
    if hasattr(obj, "validate"):
        try:
            obj = obj.validate() or obj
        except T2SError as exc:
            raise T2SError(f"{where}: {exc}") from None
    return obj


def _compared(settings: dict) -> dict:
    return jsonable({k: v for k, v in settings.items() if k not in NOT_COMPARED})


# ---------------------------------------------------------------------------------------------- prepare
def prepare_config(ctx: Context):
    from t2s_fast.data.prepare import PrepareConfig

    cfg = ctx.cfg
    tokenizer = cfg.tokenizer or (cfg.model_name if not cfg.model_name.endswith(".json") else None)
    defaults = {"out_dir": str(cfg.prepared_dir), **({"tokenizer": tokenizer} if tokenizer else {})}
    return _build(PrepareConfig, _where(ctx, "prepare"), **{**defaults, **cfg.prepare})


def _run_prepare(ctx: Context, budget: float) -> dict:
    from t2s_fast.data.prepare import prepare

    pc = prepare_config(ctx)
    stats = prepare(pc, log=log.info)
    return {"out_dir": str(pc.out_dir), "files": {k: v.get("examples") for k, v in stats["files"].items()},
            "wall_seconds": stats.get("wall_seconds")}


# ---------------------------------------------------------------------------------------------- training
def train_config(ctx: Context, stage: str, *, budget: float | None = None, resume: bool = False):
    from t2s_fast.data.prepare import MIXED_TRAIN, MIXED_VALID, STAGE1_TRAIN, STAGE1_VALID
    from t2s_fast.train.config import TrainConfig

    cfg, prepared = ctx.cfg, ctx.cfg.prepared_dir
    defaults = {"stage1": {"train_file": str(prepared / STAGE1_TRAIN), "eval_file": str(prepared / STAGE1_VALID)},
                "stage2": {"train_file": str(prepared / MIXED_TRAIN), "eval_file": str(prepared / MIXED_VALID),
                           "adapter_path": str(cfg.stage_dir("stage1") / "adapter")}}[stage]
    settings = {**defaults, **getattr(cfg, stage)}
    owned = dict(model_name=cfg.model_name, tokenizer=cfg.tokenizer, gpu_hourly_usd=ctx.process_hourly_usd(stage),
                 output_dir=str(cfg.stage_dir(stage)), resume=resume, max_cost_usd=budget)
    tc = _build(TrainConfig, _where(ctx, stage), **settings, **owned)
    processes = ctx.train_processes(stage)
    if processes > 1 and tc.global_batch_size is None:  # the one-GPU run's optimizer batch
        tc = _build(TrainConfig, _where(ctx, stage), **settings, **owned, global_batch_size=tc.accumulated_batch())
    if processes > 1:  # checked here, before anything runs, not by each rank once it has started
        try:
            tc.per_process_batch(processes)
            if not tc.packing:
                tc.accumulation_for(tc.per_device_train_batch_size, processes)
        except T2SError as exc:
            raise T2SError(f"{_where(ctx, stage)}: {processes} training processes (train_processes / gpus): {exc}; "
                           f"or set {stage}.global_batch_size") from None
    return tc


def rl_config(ctx: Context, *, budget: float | None = None, resume: bool = False):
    from t2s_fast.data.prepare import STAGE1_TRAIN

    cfg = ctx.cfg
    cls = section_class("stage3")
    known = {f.name for f in fields(cls)}
    before = [s for s in ("stage2", "stage1") if cfg.stage_on(s)]
    defaults = {"adapter_path": str(cfg.stage_dir(before[0]) / "adapter") if before else None,
                "train_file": str(cfg.prepared_dir / STAGE1_TRAIN),
                "db_root": str(Path(cfg.spider_dir) / "database") if cfg.spider_dir else None,
                "tokenizer": cfg.tokenizer}
    settings = {k: v for k, v in defaults.items() if k in known and v is not None}
    settings.update(cfg.stage3)
    if settings.get("adapter_path") in ("stage1", "stage2"):  # a stage of this run, by name: its final adapter
        settings["adapter_path"] = str(cfg.stage_dir(settings["adapter_path"]) / "adapter")
    return _build(cls, _where(ctx, "stage3"), **settings, model_name=cfg.model_name,
                  gpu_hourly_usd=ctx.process_hourly_usd("stage3"), output_dir=str(cfg.stage_dir("stage3")),
                  resume=resume, max_cost_usd=budget)


def stage_config(ctx: Context, stage: str, **kw):
    return rl_config(ctx, **kw) if stage == "stage3" else train_config(ctx, stage, **kw)


def _config_dict(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else asdict(obj)


def logged_cost(folder: Path) -> float:
    """The dollars a training run's log already counts (a resumed run's budget guard carries them over)."""
    from t2s_fast.jsonl import read_jsonl

    log_file = folder / "train_log.jsonl"
    rows = read_jsonl(log_file, tolerate_torn_tail=True) if log_file.is_file() else []
    costs = [r["cost_usd"] for r in rows if r.get("cost_usd") is not None]
    return max(costs) if costs else 0.0


def _train(tc) -> dict:
    from t2s_fast.train.trainer import train

    return train(tc)


def _train_rl(rc) -> dict:
    from t2s_fast.rl.trainer import train_rl

    return train_rl(rc)


def _train_data_parallel(job: dict) -> dict:
    """`t2s-fast train --config FILE` as the ranks of one data-parallel run, one per GPU (sweep/isolate.py
    `launch_ranks`: a SIGTERM reaches every rank, which finish the step, save and stop; a SIGKILL of the run ends
    them too). Its run.json, written by this launch, is the result."""
    import time

    from t2s_fast.jsonl import read_json
    from t2s_fast.sweep.isolate import launch_ranks

    run_json = Path(job["output_dir"]) / "run.json"
    started = time.time()
    argv = ["-m", "t2s_fast", "train", "--config", job["config"]]
    log.info("%d ranks of: python %s", job["processes"], " ".join(argv))
    codes = launch_ranks(argv, job["processes"])
    info = read_json(run_json) if run_json.is_file() and run_json.stat().st_mtime >= started else {}
    if info:
        return info
    raise T2SError(f"data-parallel training ({job['processes']} processes of `python {' '.join(argv)}`) ended with "
                   f"exit codes {codes} without writing {run_json}; the ranks' output is above")


def _run_training(ctx: Context, stage: str, budget: float) -> dict:
    folder = ctx.cfg.stage_dir(stage)
    resume = folder.is_dir() and any(folder.iterdir())
    carried = logged_cost(folder) if resume else 0.0
    tc = stage_config(ctx, stage, budget=round(budget + carried, 6), resume=resume)
    processes = ctx.train_processes(stage)
    log.info("%s: training with $%.4f of the cap%s%s", stage, budget, f" (resuming; ${carried:.4f} already spent)"
             if resume else "", f", data parallel over {processes} processes" if processes > 1 else "")
    try:
        if processes > 1:
            from t2s_fast.jsonl import write_json

            job = Path(ctx.cfg.out_dir) / f"{stage}.launch.json"  # the stage's settings, as `train --config` reads
            write_json(job, _config_dict(tc))
            info = _train_data_parallel({"config": str(job), "processes": processes, "output_dir": tc.output_dir})
        else:
            info = _call(_train_rl if stage == "stage3" else _train, tc, ctx)
    except KeyboardInterrupt:
        raise Interrupted(f"{stage}: aborted by a second signal") from None
    reason = info.get("stop_reason")
    if reason == "interrupted":
        raise Interrupted(f"{stage} stopped at step {info.get('global_step')} (checkpoint saved)")
    if not info.get("adapter_dir"):
        raise T2SError(f"{stage}: training stopped ({reason}) without an adapter; see {folder / 'run.json'}")
    return {k: info.get(k) for k in ("stop_reason", "global_step", "cost_usd", "adapter_dir", "final_loss",
                                     "final_eval_loss", "trained_tokens_per_s", "projected_cost_usd")}


# ---------------------------------------------------------------------------------------------- evaluations
def _eval_config(ctx: Context, stage: str, adapters: dict[str, str], defaults: dict, variant: str | None = None):
    from t2s_fast.evaluate.config import EvalConfig

    cfg = ctx.cfg
    section = getattr(cfg, stage)
    if cfg.gpus > 1 and ctx.device.kind == "cuda" and not {"tensor_parallel_size", "data_parallel_size"} & set(section):
        from t2s_fast.generate.base import select_backend

        try:
            vllm = select_backend(section.get("backend", "auto")) == "vllm"
        except T2SError:  # vLLM asked for but not installed: the evaluation itself says so
            vllm = False
        if vllm:  # one engine per rented GPU, the questions shared
            defaults = {**defaults, "data_parallel_size": cfg.gpus}
    settings = {**defaults, **section, **(cfg.eval_variants[variant] if variant else {})}
    out_dir = cfg.stage_dir(stage) / variant if variant else cfg.stage_dir(stage)
    where = cfg.where(f"eval_variants.{variant}") if variant else _where(ctx, stage)
    return _build(EvalConfig, where, **settings, base_model=cfg.model_name, tokenizer=cfg.tokenizer,
                  out_dir=str(out_dir), adapters=dict(adapters), include_base=stage == "eval" or not adapters)


def choose_config(ctx: Context, adapters: dict[str, str]):
    from t2s_fast.data.prepare import STAGE1_VALID

    # as the sweep: greedy held-out EX chooses (eval's default repair would resample failing SQL)
    defaults = {"suite": "heldout", "questions": str(ctx.cfg.prepared_dir / STAGE1_VALID), "repair": "none",
                **({"spider_dir": ctx.cfg.spider_dir} if ctx.cfg.spider_dir else {})}
    ec = _eval_config(ctx, "choose", adapters, defaults)
    from t2s_fast.evaluate.selection import refuse_spider_dev

    refuse_spider_dev(suite=ec.suite, split=ec.split, questions=ec.questions, what=f"{_where(ctx, 'choose')}")
    return ec


def dev_config(ctx: Context, adapters: dict[str, str], variant: str | None = None):
    """The Spider dev evaluation: the `eval` section's own, or with one of `eval_variants`' changes."""
    spider = {"spider_dir": ctx.cfg.spider_dir} if ctx.cfg.spider_dir else {}
    defaults = {"suite": "spider1", "split": "dev", **spider}
    return _eval_config(ctx, "eval", adapters, defaults, variant)


def dev_configs(ctx: Context, adapters: dict[str, str]) -> list:
    """The eval stage's evaluations, in the order they run: the `eval` section's own, then each variant's."""
    return [dev_config(ctx, adapters), *(dev_config(ctx, adapters, name) for name in ctx.cfg.eval_variants)]


def choose_candidates(ctx: Context) -> dict[str, str]:
    """Every checkpoint and final adapter of every trained stage: "stage1@step-200", "stage2@final", ..."""
    from t2s_fast.evaluate.checkpoints import checkpoint_adapters

    out = {}
    for stage in ctx.trained():
        out.update(checkpoint_adapters(ctx.cfg.stage_dir(stage), prefix=f"{stage}@"))
    return out


def dev_adapters(ctx: Context) -> dict[str, str]:
    """Each trained stage's final adapter, and the chosen one when it is none of them."""
    adapters = {stage: ctx.adapter_of(stage) for stage in ctx.trained()}
    chosen = ctx.chosen()
    if chosen and chosen["path"] not in adapters.values():
        adapters["chosen"] = chosen["path"]
    return adapters


def _evaluate(ec, generator=None) -> dict:
    from t2s_fast.evaluate.harness import evaluate

    return evaluate(ec, generator=generator)


def _evaluate_all(ecs: list) -> list[dict]:
    """Several evaluations of the same models through one engine, opened when the first of them has something to
    generate (none when all are finished): one engine start for the eval stage, whatever its variants."""
    if len(ecs) == 1:
        return [_evaluate(ecs[0])]
    from t2s_fast.evaluate.lazy_engine import LazyEngine

    engine = LazyEngine(ecs[0])
    try:
        return [_evaluate(ec, generator=engine) for ec in ecs]
    finally:
        engine.close()


def _summary(report: dict, out_dir: str) -> dict:
    """What the run's report keeps of an evaluation: EX overall and by hardness per adapter, and its files."""
    from t2s_fast.generate.base import BASE_ADAPTER

    adapters = {name: {"display_name": "base" if name == BASE_ADAPTER else name, "ex": a["ex"], "n": a["n"],
                       "correct": a["correct"], "path": a.get("path"),
                       "by_hardness": a.get("by_hardness", {})} for name, a in report["adapters"].items()}
    out = Path(out_dir)
    return {"out_dir": out_dir, "suite": report["settings"]["suite"], "split": report["settings"].get("split"),
            "source": report["settings"].get("source"), "adapters": adapters,
            "files": {"per_question": str(out / "scored.jsonl.gz"), "predictions": str(out / "predictions.jsonl"),
                      "report_html": str(out / "report.html"), "report_md": str(out / "report.md"),
                      "report_json": str(out / "report.json")}}


def _run_choose(ctx: Context, budget: float, *, force: bool = False) -> dict:
    from t2s_fast.evaluate.checkpoints import checkpoint_rows
    from t2s_fast.sweep.rule import choose

    ec = choose_config(ctx, choose_candidates(ctx))
    ec.force = force
    report = _call(_evaluate, ec, ctx)
    rows, before = [], 0.0
    for stage in ctx.trained():  # dollars to a checkpoint include the stages before it (ties: cheaper)
        stage_rows = checkpoint_rows(ctx.cfg.stage_dir(stage), report, prefix=f"{stage}@")
        for r in stage_rows:
            r["cost_usd"] = None if r.get("cost_usd") is None else round(r["cost_usd"] + before, 6)
            r["stage"] = stage
        rows += stage_rows
        before += ctx.result(stage).get("cost_usd") or 0.0
    chosen, rule = choose(None, rows)
    if chosen is None:
        raise T2SError(f"{ec.out_dir}: no candidate has a held-out EX; nothing to choose")
    log.info("choose: %s (held-out EX %.3f) among %d candidates", chosen["name"], chosen["ex"], len(rows))
    return {**_summary(report, ec.out_dir), "candidates": rows, "chosen": chosen, "rule": rule["text"]}


def _run_eval(ctx: Context, budget: float, *, force: bool = False) -> dict:
    ecs = dev_configs(ctx, dev_adapters(ctx))
    for ec in ecs:
        ec.force = force
    reports = _call(_evaluate_all, ecs, ctx)
    chosen = ctx.chosen()
    names = {path: name for name, path in ecs[0].adapters.items()}
    variants = {name: {**_summary(report, ec.out_dir), "decoding": decoding_text(ec),
                       "changes": ctx.cfg.eval_variants[name]}
                for name, ec, report in zip(ctx.cfg.eval_variants, ecs[1:], reports[1:])}
    return {**_summary(reports[0], ecs[0].out_dir), "decoding": decoding_text(ecs[0]),
            "chosen_as": names.get(chosen["path"]) if chosen else None, **({"variants": variants} if variants else {})}


def decoding_text(ec) -> str:
    """How an evaluation decodes, in words: 'greedy, repair resample (K=8)', 'majority vote of 8 samples at T=0.8,
    repair none'."""
    if ec.n_samples > 1:
        sampling = f"majority vote of {ec.n_samples} samples at T={ec.temperature:g}"
    else:
        sampling = "greedy" if ec.temperature == 0 else f"one sample at T={ec.temperature:g}"
    return f"{sampling}, repair {ec.repair}" + (f" (K={ec.repair_k})" if ec.repair != "none" else "")


# ---------------------------------------------------------------------------------------------- merge
def _merge(job: dict) -> str:
    from t2s_fast.merge import merge

    return str(merge(**job))


def merge_job(ctx: Context) -> dict:
    from t2s_fast.merge import MergeConfig

    chosen = ctx.chosen()
    mc = _build(MergeConfig, _where(ctx, "merge"), **ctx.cfg.merge, base_model=ctx.cfg.model_name,
                adapter_path=chosen["path"] if chosen else "", output_dir=str(ctx.cfg.stage_dir("merge")))
    return asdict(mc)


def _run_merge(ctx: Context, budget: float) -> dict:
    job = merge_job(ctx)
    out = Path(job["output_dir"])
    if out.is_dir() and (out / "config.json").is_file():  # merged before the state could say so
        return {"merged_dir": str(out), "adapter_path": job["adapter_path"], "adopted": True}
    return {"merged_dir": _call(_merge, job, ctx), "adapter_path": job["adapter_path"]}


# ---------------------------------------------------------------------------------------------- the table
def settings(ctx: Context, stage: str) -> dict:
    """What a stage runs with: a finished stage runs again when these change."""
    if stage == "prepare":
        return _compared(asdict(prepare_config(ctx)))
    if stage in TRAINING:
        n = ctx.train_processes(stage)
        return _compared({**_config_dict(stage_config(ctx, stage)), **({"processes": n} if n > 1 else {})})
    if stage == "choose":
        return _compared(_eval_settings(choose_config(ctx, {})))
    if stage == "eval":
        own, *variants = (_eval_settings(ec) for ec in dev_configs(ctx, {}))
        return _compared({**own, **({"variants": dict(zip(ctx.cfg.eval_variants, variants))} if variants else {})})
    if stage == "merge":
        return _compared({k: v for k, v in asdict(_merge_settings(ctx)).items() if k != "adapter_path"})
    return {}


def _eval_settings(ec) -> dict:
    return {k: v for k, v in asdict(ec).items() if k not in ("adapters", "include_base")}


def _merge_settings(ctx: Context):
    from t2s_fast.merge import MergeConfig

    return MergeConfig(**ctx.cfg.merge, base_model=ctx.cfg.model_name, adapter_path="-",
                       output_dir=str(ctx.cfg.stage_dir("merge")))


def inputs(ctx: Context, stage: str) -> dict:
    """Fingerprints of what a stage reads (taken when it starts: earlier stages have written them by then)."""
    if stage == "prepare":
        pc = prepare_config(ctx)
        return {"spider_dir": folder_fingerprint(pc.spider_dir), "spider2_dir": folder_fingerprint(pc.spider2_dir)}
    if stage in TRAINING:
        tc = stage_config(ctx, stage)
        return {k: file_fingerprint(getattr(tc, k, None)) for k in ("train_file", "eval_file")} | \
            {"adapter_path": adapter_fingerprint(getattr(tc, "adapter_path", None))}
    if stage == "choose":
        return {"questions": file_fingerprint(choose_config(ctx, {}).questions),
                **{n: adapter_fingerprint(p) for n, p in choose_candidates(ctx).items()}}
    if stage == "eval":
        return {n: adapter_fingerprint(p) for n, p in dev_adapters(ctx).items()}
    if stage == "merge":
        chosen = ctx.chosen()
        return {"adapter": adapter_fingerprint(chosen["path"]) if chosen else None}
    return {}


def missing(ctx: Context, stage: str) -> str | None:
    """Why a stage cannot run now (an earlier stage did not produce what it reads), or None."""
    if stage == "stage2":
        tc = stage_config(ctx, stage)
        if not adapter_fingerprint(tc.adapter_path):
            return f"no stage-1 adapter at {tc.adapter_path} (stage 1 did not finish)"
    if stage == "stage3":
        rc = stage_config(ctx, stage)
        if getattr(rc, "adapter_path", None) and not adapter_fingerprint(rc.adapter_path):
            return f"no adapter at {rc.adapter_path} to continue"
    if stage in TRAINING:
        f = getattr(stage_config(ctx, stage), "train_file", None)
        if f and not Path(f).is_file():
            return f"train_file {f} not found"
    if stage == "choose" and not ctx.trained():
        return "no training stage finished: nothing to choose among"
    if stage == "merge" and ctx.chosen() is None:
        return "no adapter to merge (no training stage finished)"
    return None


def project(ctx: Context, stage: str) -> Projection:
    cfg, device = ctx.cfg, ctx.device
    if stage == "prepare":
        return _priced(cfg, PREPARE_S[0], PREPARE_S[1])
    if stage in ("stage1", "stage2"):
        return project_training(cfg, stage, stage_config(ctx, stage), device, ctx.train_processes(stage))
    if stage == "stage3":
        rc = stage_config(ctx, stage)
        train, prompts = Path(getattr(rc, "train_file", "") or ""), None
        if train.is_file():
            with train.open() as f:
                prompts = sum(1 for _ in f)
        return project_rl(cfg, rc, prompts)
    if stage == "choose":
        ec = choose_config(ctx, {})
        n = len(choose_candidates(ctx)) or _planned_candidates(ctx)
        return project_eval(cfg, [ec], count_questions(ec), n, device)
    if stage == "eval":
        ecs = dev_configs(ctx, {})
        n = 1 + (len(dev_adapters(ctx)) or 1 + len([s for s in TRAINING if cfg.stage_on(s)]))
        return project_eval(cfg, ecs, count_questions(ecs[0]), n, device)
    if stage == "merge":
        return _priced(cfg, MERGE_S[0], MERGE_S[1])
    return _priced(cfg, REPORT_S[0], REPORT_S[1])


def expected_answers(ctx: Context, stage: str) -> int | None:
    """Answers an evaluation stage generates (for status's progress), None for other stages."""
    if stage == "choose":
        ec = choose_config(ctx, {})
        return count_questions(ec) * max(1, len(choose_candidates(ctx))) * ec.n_samples
    if stage == "eval":
        ecs = dev_configs(ctx, {})
        return count_questions(ecs[0]) * (1 + len(dev_adapters(ctx))) * sum(ec.n_samples for ec in ecs)
    return None


def _planned_candidates(ctx: Context) -> int:
    """Checkpoints + final adapter of each training stage that is on, before any ran (the default keeps 3)."""
    n = 0
    for stage in TRAINING:
        if ctx.cfg.stage_on(stage):
            limit = getattr(ctx.cfg, stage).get("save_total_limit", 3)
            n += 1 + (limit if limit else 3)
    return max(n, 1)


def run(ctx: Context, stage: str, budget: float, *, rerun: bool) -> dict:
    """Run one stage with `budget` dollars of the cap; its result (kept in the state and the report)."""
    if stage == "prepare":
        return _run_prepare(ctx, budget)
    if stage in TRAINING:
        return _run_training(ctx, stage, budget)
    if stage == "choose":
        return _run_choose(ctx, budget, force=rerun)
    if stage == "eval":
        return _run_eval(ctx, budget, force=rerun)
    if stage == "merge":
        return _run_merge(ctx, budget)
    raise KeyError(stage)
