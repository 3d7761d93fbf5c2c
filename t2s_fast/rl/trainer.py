"""`t2s-fast rl`: GRPO on an execution reward, continuing a stage-1 or stage-2 adapter (stage 3).

The run, in order: check every input before anything is written (the adapter, the train file, that the reward
reaches the databases); choose the prompts worth learning from (`prompts.py`: a pass in its own process, or
with --filter-engine colocated in the trainer's colocated engine once the trainer is built); train with TRL's
GRPOTrainer under `train`'s dollar meter, budget stop and SIGTERM handling; save the adapter, the curves and
run.json.

Output directory (the layout of a `t2s-fast train` run, so `eval --checkpoints` and `--resume` read it alike):

- ``prompts/``: the filter pass (pass_counts.jsonl, pass.json, filtered.jsonl, filter.json);
- ``adapter/``: the final adapter (PEFT format, with the tokenizer);
- ``checkpoints/checkpoint-N/``: Trainer checkpoints, each with its adapter (``eval --checkpoints`` evaluates
  every one) and, once complete, the marker ``t2s_checkpoint_complete``;
- ``train_log.jsonl``: per optimizer step: loss, reward, reward_std, frac_reward_zero_std, completion_length,
  clipped_ratio, match_rate, start_match_rate (the filter pass's pass rate of the step's prompts: what
  match_rate is while the policy is still the starting adapter), sync_logp_diff_mean / _max (vLLM's log-probability
  of each sampled token against the training model's: near 0 when the weights reach the engine),
  importance_ratio_mean / _min (0: a sequence passed TRL's cap and was masked out of the loss), fail_rate,
  generation_s, reward_s, train_s, step_time_s, elapsed_s, cost_usd, batch_tokens and padding_share (the
  training micro-batches' token positions, and the share of them that was padding);
- ``rl_curves.png``: reward, loss, zero-variance share and completion length against the step;
- ``run.json``: settings, the filter's summary, engine, versions, device, steps, timing per step (median
  generation / reward / training seconds), peak GPU memory, dollars (resumed sessions included), stop reason.
"""

from __future__ import annotations

import logging
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.rl.config import RLConfig

log = logging.getLogger(__name__)


def _check_inputs(cfg: RLConfig) -> None:
    from t2s_fast.adapters import check_adapter_flag

    check_adapter_flag("--adapter-path", cfg.adapter_path)
    from t2s_fast.rl.prompts import load_training_rows

    load_training_rows(cfg)  # the train file is readable and the reward reaches its databases


def length_grouped_order(lengths: list[int], per_step: int, steps_per_group: int, seed: int) -> list[int]:
    """An order of the prompts (indexes into ``lengths``) whose consecutive runs of ``per_step`` are the steps:
    the prompts are shuffled, each group of ``per_step x steps_per_group`` is sorted by length and cut into steps,
    and the whole steps are shuffled; a last partial step stays last (TRL drops it, so it shifts no other step)."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = per_step * steps_per_group
    steps = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start:start + group], key=lambda i: lengths[i])
        steps += [chunk[i:i + per_step] for i in range(0, len(chunk), per_step)]
    whole = [s for s in steps if len(s) == per_step]
    rng.shuffle(whole)
    return [i for s in whole + [s for s in steps if len(s) < per_step] for i in s]


def prompt_padding_share(lengths: list[int], order: list[int], per_step: int) -> float:
    """The share of padding among the prompt positions of the whole steps taken in ``order`` (TRL pads a step's
    prompts to its longest)."""
    steps = [order[i:i + per_step] for i in range(0, len(order) - len(order) % per_step, per_step)]
    real = sum(lengths[i] for s in steps for i in s)
    return round(1 - real / sum(per_step * max(lengths[i] for i in s) for s in steps), 4)


def _dataset(kept: list[dict], tokenizer, cfg: RLConfig):
    """TRL's dataset: the prompt as rendered text (the one prompt builder's), gold SQL and database for the reward;
    with --length-grouped-steps, in the order of the steps (``length_grouped_order``)."""
    from datasets import Dataset

    from t2s_fast.prompt import render_prompt

    rows = [{"prompt": render_prompt(tokenizer, r["messages"]), "gold": r["gold"], "db_id": r["db_id"], "id": r["id"]}
            for r in kept]
    if all("correct" in r for r in kept):  # the filter pass's pass rate (none without a pass)
        for row, r in zip(rows, kept):
            row["pass_rate"] = r["correct"] / r["samples"]
    if cfg.length_grouped_steps:
        lengths = [len(ids) for ids in tokenizer([r["prompt"] for r in rows], add_special_tokens=False)["input_ids"]]
        rows = [rows[i] for i in length_grouped_order(lengths, cfg.prompts_per_step, cfg.length_grouped_steps,
                                                      cfg.seed)]
    return Dataset.from_list(rows)


def train_rl(cfg: RLConfig) -> dict:
    """Run (or resume) GRPO and return run.json's content."""
    cfg.validate()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.time()  # the GPU is paid from here
    out = Path(cfg.output_dir)
    from t2s_fast.train.trainer import resume_point

    resume_from = resume_point(out, cfg.resume, "an RL run")
    _check_inputs(cfg)

    from t2s_fast.rl.engines import resolve_engine
    from t2s_fast.train.budget import RunMeter

    engine = resolve_engine(cfg.engine)
    meter = RunMeter(gpu_hourly_usd=cfg.gpu_hourly_usd, world_size=1, max_cost_usd=cfg.max_cost_usd, t0=t0)
    out.mkdir(parents=True, exist_ok=True)
    _carry_over(meter, out, resume_from)

    from t2s_fast.rl.engines import samples_in_trainer
    from t2s_fast.rl.prompts import filter_prompts, finished_pass, load_training_rows

    if finished_pass(cfg) is None and samples_in_trainer(cfg, engine):
        # the filter pass samples in the trainer's own engine: build it on every prompt, then train on the kept
        rows = load_training_rows(cfg)
        run = _build(cfg, engine, meter, rows)
        _sample_pass_in_trainer(cfg, run, rows)
        try:
            kept, filter_info = filter_prompts(cfg)  # the pass just written, under the rule
        except T2SError:  # nothing to learn from: no run is left behind but the pass (the trainer made checkpoints/)
            ckpt = out / "checkpoints"
            if ckpt.is_dir() and not any(ckpt.iterdir()):
                ckpt.rmdir()
            raise
        run["trainer"].train_dataset, run["prompts"] = _dataset(kept, run["tokenizer"], cfg), len(kept)
    else:
        kept, filter_info = filter_prompts(cfg)
        run = _build(cfg, engine, meter, kept)
    print(f"rl: {filter_info['kept']:,} of {filter_info['prompts']:,} prompts kept ({filter_info['rule']}; "
          f"{filter_info['never_right']:,} never right, {filter_info['always_right']:,} always right); "
          f"${meter.cost_usd():.3f} spent so far", file=sys.stderr, flush=True)
    run.update(out=out, started_at=started_at, resume_from=resume_from, filter=filter_info, engine=engine)
    return _train_and_save(cfg, run)


def _sample_pass_in_trainer(cfg: RLConfig, run: dict, rows: list[dict]) -> None:
    """The filter pass through the trainer's colocated engine (``engines.colocated_sampler``), written as the
    separate pass writes it (``prompts.run_pass_with``)."""
    from t2s_fast.prompt import render_prompt
    from t2s_fast.rl.engines import colocated_sampler
    from t2s_fast.rl.prompts import run_pass_with

    print(f"filter: {cfg.filter_samples} samples per training prompt from {cfg.adapter_path}, in the trainer's "
          "colocated engine", file=sys.stderr, flush=True)
    prompts = [render_prompt(run["tokenizer"], r["messages"]) for r in rows]
    run_pass_with(cfg, rows, colocated_sampler(run["trainer"], cfg.filter_temperature), prompts, "colocated")


def _carry_over(meter, out: Path, resume_from: str | None) -> None:
    from t2s_fast.jsonl import write_jsonl

    step = int(resume_from.rsplit("-", 1)[-1]) if resume_from else None
    kept = meter.carry_over(out / "train_log.jsonl", step)
    if kept is not None:
        write_jsonl(out / "train_log.jsonl", kept)  # steps after the checkpoint are redone


def _build(cfg: RLConfig, engine: str, meter, kept: list[dict]) -> dict:
    from t2s_fast.rl.engines import (
        PlainLogprobs,
        SortedMicroBatches,
        grpo_args,
        load_policy,
        on_gpu,
        trainer_base,
        triton_available,
        use_engine_cache,
    )

    use_engine_cache(cfg, engine)
    base_cls = trainer_base(engine)  # before anything imports trl: Unsloth patches it on import
    from t2s_fast.models import model_cache_dir, training_source
    from t2s_fast.rl.callbacks import RLProgress, RLStepLog, StepClock, timed_trainer_class
    from t2s_fast.rl.reward import ExecutionReward
    from t2s_fast.train.callbacks import BudgetGuard, SignalGuard

    source = training_source(cfg.model_name, cfg.tokenizer, device_kind="cuda" if on_gpu() else "cpu",
                             cache_dir=model_cache_dir(cfg.output_dir))  # aliases, GGUF, random-init shapes
    model_path = source.model_path
    model, tokenizer = load_policy(cfg, engine, model_path, source.tokenizer_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    reward = ExecutionReward(cfg.db_root, cfg.reward, cfg.reward_workers, cfg.reward_timeout_s)
    clock, mixins = StepClock(), ()
    if cfg.sorted_micro_batches and engine == "trl":
        mixins += (SortedMicroBatches,)
    if not triton_available():
        log.warning("triton is not installed (CPU torch): log-probabilities come from the full logits instead of "
                    "TRL's fused LM head (same quantity, more memory)")
        mixins += (PlainLogprobs,)
    cls = timed_trainer_class(base_cls, clock, meter, *mixins)
    if SortedMicroBatches in mixins:
        cls.skip_no_advantage = cfg.skip_no_advantage
    signal_guard = SignalGuard(meter)
    out = Path(cfg.output_dir)
    trainer = cls(model=model, reward_funcs=[reward], args=grpo_args(cfg, engine, str(out / "checkpoints")),
                  train_dataset=_dataset(kept, tokenizer, cfg), processing_class=tokenizer,
                  callbacks=[RLStepLog(meter, out / "train_log.jsonl", clock, reward), BudgetGuard(meter),
                             signal_guard, RLProgress(meter)])
    return {"trainer": trainer, "tokenizer": tokenizer, "meter": meter, "signal_guard": signal_guard,
            "model_path": model_path, "prompts": len(kept)}


def _train_and_save(cfg: RLConfig, run: dict) -> dict:
    import torch

    from t2s_fast.rl.plot import plot_rl_curves
    from t2s_fast.train.trainer import OOM_HELP, save_adapter, train_or_restore

    trainer, meter, out = run["trainer"], run["meter"], run["out"]
    session_t0, error = time.time(), None
    run["signal_guard"].install()
    try:
        try:
            if meter.max_cost_usd is not None and meter.should_stop_for_budget(0, eval_due=False):
                log.warning("the budget is spent before the first step (filter pass and loading included)")
            else:
                train_or_restore(trainer, run["resume_from"])
        except torch.OutOfMemoryError:
            meter.end("oom")
            error = T2SError(OOM_HELP)
        except KeyboardInterrupt:
            meter.end("aborted")
            _write_run_json(cfg, run, time.time() - session_t0)
            raise
        if error is None and trainer.state.global_step > 0:
            save_adapter(trainer.model, run["tokenizer"], out / "adapter")
    finally:
        run["signal_guard"].uninstall()
    plot_rl_curves(out / "train_log.jsonl", out / "rl_curves.png",
                   title=f"GRPO from {Path(cfg.adapter_path).name} ({Path(cfg.model_name).name})")
    info = _write_run_json(cfg, run, time.time() - session_t0)
    if error is not None:
        raise error
    return info


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def summarize_steps(rows: list[dict]) -> dict:
    """run.json's summary of train_log.jsonl's rows: median seconds per step (generation / reward / training),
    trained tokens/s, padding share, vLLM-vs-trainer log-prob gap, first and last reward, mean zero-variance share.
    Also what a report reads from the log of a run stopped before it wrote run.json."""
    steps = [r for r in rows if r.get("reward") is not None]
    return {
        "step_seconds_median": {"total": _median(steps, "step_time_s"), "generation": _median(steps, "generation_s"),
                                "reward": _median(steps, "reward_s"), "training": _median(steps, "train_s")},
        "train_tokens_per_s_median": _median(steps, "train_tokens_per_s"),
        "padding_share_median": _median(steps, "padding_share"),
        "sync_logp_diff_mean_median": _median(steps, "sync_logp_diff_mean"),
        "first_reward": steps[0]["reward"] if steps else None, "final_reward": steps[-1]["reward"] if steps else None,
        "mean_frac_reward_zero_std": round(statistics.mean(r["frac_reward_zero_std"] for r in steps), 4)
        if steps and all("frac_reward_zero_std" in r for r in steps) else None,
    }


def _write_run_json(cfg: RLConfig, run: dict, wall_s: float) -> dict:
    from t2s_fast.jsonl import read_jsonl
    from t2s_fast.runinfo import device_info, peak_gpu_memory, write_run_json

    m, state, out = run["meter"], run["trainer"].state, run["out"]
    rows = read_jsonl(out / "train_log.jsonl", tolerate_torn_tail=True) if (out / "train_log.jsonl").is_file() else []
    info = {
        "started_at": run["started_at"], "stop_reason": m.stop_reason,
        "stage": "rl", "method": "grpo", "config": cfg.to_dict(), "engine": run["engine"],
        "model": {"source": cfg.model_name, "path": run["model_path"], "adapter_path": cfg.adapter_path},
        "filter": run["filter"], "device": device_info(),
        "world_size": 1, "resumed_from": run["resume_from"], "global_step": state.global_step,
        "max_steps": state.max_steps, "epoch": state.epoch,
        "completions_per_step": cfg.completions_per_step, **summarize_steps(rows), **peak_gpu_memory(),
        "wall_time_s": round(wall_s, 2), "elapsed_s_total": round(m.elapsed_s(), 2),
        "cost_usd": round(m.cost_usd(), 6),
        "cost_usd_at_stop": round(m.cost_at_stop, 6) if m.cost_at_stop is not None else None,
        "max_cost_usd": cfg.max_cost_usd, "gpu_hourly_usd": cfg.gpu_hourly_usd,
        "adapter_dir": str(out / "adapter") if (out / "adapter").is_dir() else None,
    }
    return write_run_json(out, info)
