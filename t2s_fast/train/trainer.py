"""`t2s-fast train`: QLoRA fine-tuning, stage 1 (new adapter) or stage 2 (`adapter_path`: the same adapter
trained further), on the Unsloth or the transformers+PEFT backend, with TRL's SFTTrainer.

Output directory (stable: `bench` and the docs read it):

- ``adapter/``: the final LoRA adapter in PEFT format (``adapter_config.json`` + ``adapter_model.safetensors``,
  loadable by PEFT and vLLM) plus the tokenizer files. Written at the end of every run that trained at least
  one step, including a budget stop or a SIGTERM.
- ``checkpoints/checkpoint-N/``: HF Trainer checkpoints (adapter, optimizer, scheduler, RNG, trainer state)
  for ``--resume``; a finished one holds the marker file ``t2s_checkpoint_complete``.
- ``train_log.jsonl``: one line per optimizer step: ``step, epoch, loss, learning_rate, grad_norm,
  trained_tokens`` (non-padding tokens in the step, all GPUs), ``loss_tokens`` (tokens with a label: SQL +
  ``<|im_end|>``), ``step_time_s, tokens_per_s, tokens_total, elapsed_s, cost_usd``; plus one line
  ``{step, epoch, eval_loss, elapsed_s, cost_usd}`` per evaluation.
- ``loss.png``: train and eval loss.
- ``run.json``: every setting (``config``), the chosen ``setup`` (TrainSetup + reasons), ``backend``,
  ``model`` (source, random init or not), ``data`` (examples, tokens, dropped), ``versions``, ``git``,
  ``device``, ``world_size``, ``global_step``, ``tokens_trained`` (this session) and ``tokens_trained_total``,
  ``trained_tokens_per_s`` (steady state: this session's steps after the first), ``peak_gpu_memory_allocated_gib``
  / ``peak_gpu_memory_reserved_gib``, ``wall_time_s`` (this session) and ``elapsed_s_total``, ``cost_usd``
  (total, resumed sessions included), ``projected_cost_usd``, ``final_loss``, ``final_eval_loss``,
  ``resumed_from``, ``stop_reason`` (``completed`` | ``budget`` | ``interrupted`` | ``oom`` | ``aborted``),
  ``stop_signal`` (SIGINT or SIGTERM when interrupted: `train` exits 130 or 143),
  ``command``, ``started_at``, ``finished_at``.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from t2s_fast import distributed
from t2s_fast.errors import T2SError
from t2s_fast.models import ModelSource, model_cache_dir, training_source
from t2s_fast.runinfo import write_run_json
from t2s_fast.train.config import TrainConfig

if TYPE_CHECKING:  # the heavy types, for the annotations only
    from transformers import PreTrainedTokenizerBase, Trainer

    from t2s_fast.train.autotune import DeviceInfo, ModelShape, TrainSetup
    from t2s_fast.train.backends.base import Backend, Loaded
    from t2s_fast.train.budget import RunMeter
    from t2s_fast.train.callbacks import SignalGuard
    from t2s_fast.train.data import TokenizedData

log = logging.getLogger(__name__)

OOM_HELP = ("CUDA ran out of memory. Fixes, in the runbook's order: a shorter --max-seq-length (drops the longest "
            "examples), a smaller --per-device-train-batch-size with more --gradient-accumulation-steps (same global "
            "batch), or --gradient-checkpointing unsloth (offloads activations to CPU memory).")


# ---------------------------------------------------------------------------------------------- model source
def resolve_model_source(cfg: TrainConfig, device_kind: str) -> ModelSource:
    """--model-name (and --tokenizer) as the folders the backend loads (`models.training_source`)."""
    return training_source(cfg.model_name, cfg.tokenizer, device_kind=device_kind,
                           cache_dir=model_cache_dir(cfg.output_dir))


# ---------------------------------------------------------------------------------------------- checkpoints
def last_complete_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint that finished writing (marker, else trainer_state.json which Trainer writes last)."""
    from t2s_fast.train.callbacks import CHECKPOINT_DONE

    if not ckpt_dir.is_dir():
        return None
    found = []
    for d in ckpt_dir.glob("checkpoint-*"):
        try:
            step = int(d.name.split("-")[-1])
        except ValueError:
            continue
        if (d / CHECKPOINT_DONE).is_file() or (d / "trainer_state.json").is_file():
            found.append((step, d))
    return max(found)[1] if found else None


def is_last_step(checkpoint: str | Path | None, max_steps: int) -> bool:
    """Whether a checkpoint was saved at the run's last step (a SIGTERM during that step, or a kill after it):
    ``max_steps`` when given (> 0), else the step count the checkpoint's run planned (epochs)."""
    import json

    state = Path(checkpoint) / "trainer_state.json" if checkpoint else None
    if state is None or not state.is_file():
        return False
    data = json.loads(state.read_text())
    last = max_steps if max_steps > 0 else data.get("max_steps", 0)
    return last > 0 and data.get("global_step", 0) >= last


def train_or_restore(trainer, resume_from: str | None) -> None:
    """``trainer.train(resume_from_checkpoint=...)``, except from a checkpoint at the run's last step: resumed from
    one, transformers' Trainer trains a step more (5.17, measured), so its weights and state are loaded instead."""
    if not is_last_step(resume_from, trainer.args.max_steps):
        trainer.train(resume_from_checkpoint=resume_from)
        return
    from transformers import TrainerState

    log.info("%s is at the run's last step: loading it, nothing left to train", resume_from)
    trainer._load_from_checkpoint(resume_from)
    trainer.state = TrainerState.load_from_json(str(Path(resume_from) / "trainer_state.json"))


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class Data:
    train: TokenizedData
    eval: TokenizedData | None


@dataclass
class Plan:
    """How the run trains: the backend, the device, the model's shape, the chosen setup and the process count."""

    backend: Backend
    device: DeviceInfo
    shape: ModelShape
    setup: TrainSetup
    world_size: int


@dataclass
class Run:
    cfg: TrainConfig
    out: Path
    plan: Plan
    source: ModelSource
    data: Data
    trainer: Trainer
    tokenizer: PreTrainedTokenizerBase
    meter: RunMeter
    signal_guard: SignalGuard
    resume_from: str | None
    load_notes: list[str] = field(default_factory=list)
    started_at: str = ""
    device: dict = field(default_factory=dict)  # runinfo.device_info(), for run.json

    @property
    def backend(self) -> Backend:
        return self.plan.backend

    @property
    def setup(self) -> TrainSetup:
        return self.plan.setup

    @property
    def train_data(self) -> TokenizedData:
        return self.data.train

    @property
    def eval_data(self) -> TokenizedData | None:
        return self.data.eval


def prepare_run(cfg: TrainConfig) -> Run:
    """Everything up to a ready SFTTrainer (tests inspect its batches without training), in named steps."""
    cfg.validate()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.time()  # the GPU is paid from here: the meter's clock starts before anything loads
    from t2s_fast.train.backends import get_backend

    backend = get_backend(cfg.backend)
    backend.setup_process()  # before trl/transformers/peft (Unsloth patches them on import)
    from t2s_fast.runinfo import device_info
    from t2s_fast.train.autotune import DeviceInfo
    from t2s_fast.train.budget import RunMeter

    if distributed.is_distributed():
        distributed.state()  # join the process group now (TrainingArguments reuses it): rank 0 writes shared files
    out = Path(cfg.output_dir)
    resume_from = resume_point(out, cfg.resume)
    _check_inputs(cfg)
    device = DeviceInfo.detect()
    source = resolve_model_source(cfg, device.kind)
    data = _load_data(cfg, source)
    plan = _plan(cfg, backend, device, source, data.train)

    from transformers import set_seed

    set_seed(cfg.seed)  # the new adapter's init (LoRA A) comes from this: same --seed, same start, on every rank
    loaded = _load_model(cfg, plan, source)
    meter = RunMeter(gpu_hourly_usd=cfg.gpu_hourly_usd, world_size=plan.world_size, max_cost_usd=cfg.max_cost_usd,
                     t0=t0)
    _carry_over_log(cfg, out, resume_from, meter)
    trainer, signal_guard = _build_trainer(cfg, plan, loaded, data, meter)
    if distributed.is_main():
        _project_cost(cfg, plan, data.train, meter)
    return Run(cfg=cfg, out=out, plan=plan, source=source, data=data, trainer=trainer, tokenizer=loaded.tokenizer,
               meter=meter, signal_guard=signal_guard, resume_from=resume_from, load_notes=loaded.notes,
               started_at=started_at, device=device_info())


def resume_point(out: Path, resume: bool, what: str = "a training run") -> str | None:
    """The checkpoint --resume continues from (None: from step 0); without --resume, refuse a used folder. `train`
    and `rl` share it (``what`` names the run in the refusal)."""
    ckpt_dir = out / "checkpoints"
    if not resume:
        if (ckpt_dir.is_dir() and any(ckpt_dir.iterdir())) or (out / "run.json").is_file():
            raise T2SError(f"{out} already holds {what}; pass --resume to continue it, or choose a new --output-dir")
        return None
    ckpt = last_complete_checkpoint(ckpt_dir)
    if ckpt is None:
        log.warning("--resume: no complete checkpoint in %s; starting from step 0 (dollars spent so far still count)",
                    ckpt_dir)
        return None
    return str(ckpt)


def _check_inputs(cfg: TrainConfig) -> None:
    """The data files and a stage-2 adapter exist: fail before loading anything heavy."""
    for flag, f in (("--train-file", cfg.train_file), ("--eval-file", cfg.eval_file)):
        if f and not Path(f).is_file():
            raise T2SError(f"{f}: {flag} not found (write it with `t2s-fast prepare`)")
    if cfg.adapter_path:
        from t2s_fast.adapters import read_adapter_config

        read_adapter_config(cfg.adapter_path)


def _load_data(cfg: TrainConfig, source: ModelSource) -> Data:
    """The train data and the eval data (or None), tokenized with the run's tokenizer and length-filtered."""
    from transformers import AutoTokenizer

    from t2s_fast.train.data import load_tokenized

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_path)
    except (OSError, ValueError) as exc:
        raise T2SError(f"cannot load the tokenizer from {source.tokenizer_path} ({exc}); pass --tokenizer") from None
    train_data = load_tokenized(cfg.train_file, tokenizer, cfg.max_seq_length, what="train")
    eval_data = load_tokenized(cfg.eval_file, tokenizer, cfg.max_seq_length, what="eval") if cfg.eval_file else None
    log.info("train data: %s", train_data.summary())
    return Data(train_data, eval_data)


def _plan(cfg: TrainConfig, backend: Backend, device: DeviceInfo, source: ModelSource,
          train_data: TokenizedData) -> Plan:
    """The automatic setup for this model, data and GPU, or the flags as given, with the accumulation that
    --global-batch-size asks for; the global batch is announced on stderr."""
    from transformers import AutoConfig

    from t2s_fast.train.autotune import ModelShape, choose_setup

    world_size = distributed.world_size()
    try:
        model_config = AutoConfig.from_pretrained(source.model_path)
    except (OSError, ValueError) as exc:
        raise T2SError(f"cannot read the model config of {source.model_path} ({exc})") from None
    try:
        shape = ModelShape.from_config(model_config)
        setup = choose_setup(
            device=device, shape=shape, max_seq_length=cfg.max_seq_length,
            mean_tokens_per_example=train_data.mean_tokens, global_batch_examples=cfg.per_process_batch(world_size),
            backend=backend.name, packing=cfg.packing, load_in_4bit=cfg.load_in_4bit,
            gradient_checkpointing=cfg.gradient_checkpointing, attention=cfg.attention,
            micro_batch_size=None if cfg.auto_setup else cfg.per_device_train_batch_size,
            max_tokens_per_example=max(train_data.lengths))
    except ValueError as exc:
        raise T2SError(f"--attention/--gradient-checkpointing: {exc}") from None
    if not cfg.auto_setup:
        setup.micro_batch_size = cfg.per_device_train_batch_size
        setup.gradient_accumulation_steps = cfg.gradient_accumulation_steps
        setup.reasons.append("--no-auto-setup: micro-batch and accumulation kept as given")
    _apply_global_batch_size(cfg, setup, train_data, world_size)
    global_batch = setup.micro_batch_size * setup.gradient_accumulation_steps * world_size
    msg = (f"global batch = {setup.micro_batch_size} per device x {setup.gradient_accumulation_steps} accumulation x "
           f"{world_size} process(es) = {global_batch}{' packed rows' if cfg.packing else ' examples'} per optimizer "
           "step")
    if distributed.is_main():
        print(msg, file=sys.stderr)
    log.info("training setup: %s", setup.to_dict())
    return Plan(backend=backend, device=device, shape=shape, setup=setup, world_size=world_size)


def _apply_global_batch_size(cfg: TrainConfig, setup: TrainSetup, train_data: TokenizedData, world_size: int) -> None:
    """--global-batch-size sets the accumulation. It counts examples; with packing a micro-batch counts packed
    rows of max_seq_length tokens, so the examples become about as many tokens' worth of rows (as the
    automatic setup does)."""
    if cfg.global_batch_size is None:
        return
    if cfg.packing:
        from t2s_fast.train.autotune import packed_rows_for

        rows = packed_rows_for(cfg.per_process_batch(world_size), train_data.mean_tokens, cfg.max_seq_length)
        setup.gradient_accumulation_steps = max(1, round(rows / setup.micro_batch_size))
        setup.reasons.append(f"--global-batch-size {cfg.global_batch_size} examples on {world_size} process(es), "
                             "packed: "
                             f"~{rows} rows of {cfg.max_seq_length} tokens per process (mean example "
                             f"{train_data.mean_tokens:.0f} tokens) -> accumulation "
                             f"{setup.gradient_accumulation_steps}")
    else:
        setup.gradient_accumulation_steps = cfg.accumulation_for(setup.micro_batch_size, world_size)
        setup.reasons.append(f"--global-batch-size {cfg.global_batch_size} on {world_size} process(es): accumulation "
                             f"{setup.gradient_accumulation_steps}")


def _carry_over_log(cfg: TrainConfig, out: Path, resume_from: str | None, meter: RunMeter) -> None:
    """--resume: the meter counts the money (and tokens) the earlier session(s) spent; rank 0 then cuts
    train_log.jsonl back to the checkpoint (later steps are redone), or, with no checkpoint to resume from, keeps
    the earlier log aside for the record. Without --resume, an old log goes."""
    log_path = out / "train_log.jsonl"
    kept_log = None
    if resume_from:
        step = resume_from.rsplit("-", 1)[-1]
        kept_log = meter.carry_over(log_path, int(step))
        log.warning("--resume: continuing from %s (step %s); %.0f s of GPU time ($%.4f) already spent still count "
                    "toward --max-cost-usd", resume_from, step, meter.prior_elapsed_s,
                    meter.prior_elapsed_s * meter.usd_per_s())
    elif cfg.resume:
        # no checkpoint to resume from (a crash before the first --save-steps): the steps are redone, but the
        # GPU time they cost was paid, so the budget guard keeps counting it
        meter.carry_over(log_path, None)
    distributed.barrier()  # every rank has read the log before rank 0 rewrites it
    if not distributed.is_main():
        return
    from t2s_fast.jsonl import write_jsonl

    if kept_log is not None:
        write_jsonl(log_path, kept_log)
    elif not resume_from and log_path.exists():
        if cfg.resume:  # keep the lost steps' log for the record instead of deleting it
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            log_path.rename(out / f"train_log.before-restart-{stamp}.jsonl")
            log.warning("--resume without a checkpoint: the earlier log is kept as train_log.before-restart-%s.jsonl;"
                        " its %.0f s of GPU time still count toward --max-cost-usd", stamp, meter.prior_elapsed_s)
        else:
            log_path.unlink()


def _build_trainer(cfg: TrainConfig, plan: Plan, loaded: Loaded, data: Data,
                   meter: RunMeter) -> tuple[Trainer, SignalGuard]:
    """(the SFTTrainer with the run's callbacks, the signal guard that run_training installs)."""
    from transformers import PrinterCallback
    from transformers import ProgressCallback as HFProgress

    from t2s_fast.train.callbacks import (
        AgreeOnStop,
        BudgetGuard,
        ProgressCallback,
        SignalGuard,
        StepLogCallback,
        trainer_class,
    )

    signal_guard = SignalGuard(meter)
    callbacks = [StepLogCallback(meter, Path(cfg.output_dir) / "train_log.jsonl"), BudgetGuard(meter), signal_guard]
    if distributed.is_distributed():
        callbacks.append(AgreeOnStop(meter))  # after every callback that may decide to stop
    if distributed.is_main():
        callbacks.append(ProgressCallback(meter))
    trainer_cls = trainer_class(plan.backend.trainer_class(), meter)
    trainer = trainer_cls(model=loaded.model, args=_sft_config(cfg, plan, has_eval=data.eval is not None),
                          train_dataset=data.train.dataset, eval_dataset=data.eval.dataset if data.eval else None,
                          processing_class=loaded.tokenizer, callbacks=callbacks)
    for cb in (PrinterCallback, HFProgress):
        trainer.remove_callback(cb)
    _check_loss_mask(trainer)
    return trainer, signal_guard


def _check_loss_mask(trainer) -> None:
    """Refuse to train on the whole sequence: the prepared dataset must carry labels with the prompt masked.
    (TRL and Unsloth each build `labels` from `completion_mask`; a version change there must not silently
    turn the loss on the prompt.)"""
    ds = trainer.train_dataset
    cols = getattr(ds, "column_names", None) or []
    if "labels" not in cols:
        raise RuntimeError(f"internal: the prepared training dataset has no labels column ({cols}); "
                           "the loss would cover the prompt")
    first = ds[0]["labels"]
    if all(lab != -100 for lab in first) or all(lab == -100 for lab in first):
        raise RuntimeError("internal: the first training example's labels are not masked to the answer")


def _load_model(cfg: TrainConfig, plan: Plan, source: ModelSource) -> Loaded:
    import torch

    try:
        return plan.backend.load(cfg, plan.setup, source)
    except torch.OutOfMemoryError:
        raise T2SError("loading the model: " + OOM_HELP) from None


def _sft_config(cfg: TrainConfig, plan: Plan, *, has_eval: bool):
    """TRL's SFTConfig for this run: checkpoints under output_dir/checkpoints, the plan's micro-batch (packed rows
    with packing) and accumulation, the backend's overrides."""
    from trl import SFTConfig

    setup, rows_per_micro, device_kind = plan.setup, plan.setup.micro_batch_size, plan.device.kind
    ckpt_dir = Path(cfg.output_dir) / "checkpoints"
    padding_free = cfg.padding_free if cfg.padding_free is not None else cfg.packing
    optim = cfg.optim if cfg.optim != "auto" else ("adamw_8bit" if device_kind == "cuda" else "adamw_torch")
    kwargs = dict(
        output_dir=str(ckpt_dir), overwrite_output_dir=False,
        per_device_train_batch_size=rows_per_micro, per_device_eval_batch_size=rows_per_micro,
        gradient_accumulation_steps=setup.gradient_accumulation_steps,
        num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, optim=optim, seed=cfg.seed, data_seed=cfg.seed,
        logging_steps=cfg.logging_steps, logging_first_step=True, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps if has_eval else None, report_to=[] if cfg.report_to in ("none",
                                                                                           "") else cfg.report_to,
        prediction_loss_only=True, disable_tqdm=True, dataloader_num_workers=cfg.dataloader_num_workers,
        # Data: pre-tokenized input_ids + completion_mask; TRL builds labels (-100 on the prompt) from the mask.
        completion_only_loss=True, max_length=cfg.max_seq_length, packing=cfg.packing, packing_strategy="bfd",
        padding_free=padding_free, dataset_num_proc=None,
    )
    if device_kind != "cuda":
        kwargs["use_cpu"] = True
    kwargs.update(plan.backend.sft_overrides(cfg, setup))
    if "overwrite_output_dir" not in SFTConfig.__dataclass_fields__:
        kwargs.pop("overwrite_output_dir")
    return SFTConfig(**kwargs)


def _project_cost(cfg: TrainConfig, plan: Plan, train_data: TokenizedData, meter: RunMeter) -> None:
    """Before training: planned tokens / the tokens/s expected from FLOPs, the GPU's peak and the setup's measured
    efficiency (t2s_fast/train/projection.py) -> hours -> dollars, plus the time already spent loading; warn
    over budget. With packing, TRL's batch size (and autotune's micro-batch) counts packed rows of max_seq_length
    tokens."""
    from t2s_fast.train.projection import expected_tokens_per_s

    backend, device, setup = plan.backend, plan.device, plan.setup
    rows_per_micro = setup.micro_batch_size
    if cfg.max_steps > 0:
        per_step = rows_per_micro * setup.gradient_accumulation_steps * meter.world_size
        # a packed row is (nearly) max_seq_length tokens; a padded micro-batch holds examples of mean length
        tokens = int(cfg.max_steps * per_step * (cfg.max_seq_length if cfg.packing else train_data.mean_tokens))
    else:
        tokens = int(cfg.num_train_epochs * train_data.total_tokens)
    exp = expected_tokens_per_s(plan.shape, device_name=device.name, device_kind=device.kind, backend=backend.name,
                                packing=cfg.packing, checkpointing=setup.gradient_checkpointing,
                                attention=setup.attention)
    tps = exp.tokens_per_s or backend.default_tokens_per_s(device.kind)
    basis = exp.basis if exp.tokens_per_s else f"{exp.basis}; a conservative {backend.name} default"
    spent_s, hours, cost = meter.plan(tokens, tps)
    price = (f"${cfg.gpu_hourly_usd}/h x {meter.world_size} GPU(s)" if device.kind == "cuda" else
             f"${cfg.gpu_hourly_usd}/h: the GPU's price (--gpu-hourly-usd), not a CPU's; this run is on the CPU")
    print(f"projected cost: {tokens:,} tokens at ~{tps:,.0f} tok/s per GPU ({basis}; refined once steps are "
          f"measured) + {spent_text(spent_s, meter.prior_elapsed_s)} = {hours:.2f} h x {price} = ${cost:.2f}",
          file=sys.stderr)
    if cfg.max_cost_usd is not None and cost > cfg.max_cost_usd:
        log.warning("projected cost $%.2f exceeds --max-cost-usd %.2f: the budget guard will stop the run early "
                    "(the adapter is saved)", cost, cfg.max_cost_usd)
        print(f"WARNING: projected ${cost:.2f} > --max-cost-usd {cfg.max_cost_usd}; the run will stop early",
              file=sys.stderr)


def spent_text(spent_s: float, prior_s: float) -> str:
    """The time already paid for, in words: this session's loading, and on a resume the earlier sessions' time
    apart (it is not loading)."""
    loading = f"{spent_s - prior_s:.0f} s already spent loading"
    return f"{loading} + {prior_s:.0f} s of the earlier session(s)" if prior_s > 0 else loading


def run_training(run: Run) -> dict:
    # the guard stays installed through the final save: a SIGTERM that arrives while the adapter is being
    # written is noted, not fatal, so a finished run never leaves a half-written adapter behind
    run.signal_guard.install()
    try:
        return _train_and_save(run)
    finally:
        run.signal_guard.uninstall()


def _train_and_save(run: Run) -> dict:
    import torch

    trainer, meter = run.trainer, run.meter
    session_t0 = time.time()
    error = None
    try:
        train_or_restore(trainer, run.resume_from)
        # evaluate() is a collective under DDP: every rank must take the same decision
        if run.eval_data is not None and meter.stop_reason == "completed" and \
                trainer.state.global_step % run.cfg.eval_steps != 0 and _agreed(meter.can_afford_eval()):
            trainer.evaluate()
    except torch.OutOfMemoryError:
        meter.end("oom")
        error = T2SError(OOM_HELP)
    except KeyboardInterrupt:
        meter.end("aborted")
        _write_run_json(run, time.time() - session_t0)
        raise
    main = distributed.is_main()  # only rank 0 writes the adapter, the plot and run.json (DDP: same weights)
    if main and error is None and trainer.state.global_step > 0:
        save_adapter(trainer.model, run.tokenizer, run.out / "adapter")
    from t2s_fast.train.plot import plot_loss

    if main:
        plot_loss(run.out / "train_log.jsonl", run.out / "loss.png",
                  title=f"{Path(run.cfg.model_name).name} ({run.backend.name}) "
                        f"{'stage 2' if run.cfg.adapter_path else 'stage 1'}")
    info = _write_run_json(run, time.time() - session_t0)
    distributed.barrier()  # the others return once the adapter and run.json are in place
    if error is not None:
        raise error
    return info


def _agreed(flag: bool) -> bool:
    if not distributed.is_distributed():
        return flag
    return distributed.all_sum([1.0 if (flag and distributed.is_main()) else 0.0])[0] > 0  # rank 0 decides


def save_adapter(model, tokenizer, dest: Path) -> Path:
    """PEFT-format adapter + tokenizer, written to a temp folder and renamed into place."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if dest.exists():
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(dest)
    return dest


def _write_run_json(run: Run, wall_s: float) -> dict:
    """run.json (the module docstring lists its keys), through the one writer (`runinfo.write_run_json`)."""
    from t2s_fast.jsonl import read_jsonl
    from t2s_fast.runinfo import peak_gpu_memory

    m, state = run.meter, run.trainer.state
    rows = read_jsonl(run.out / "train_log.jsonl",
                      tolerate_torn_tail=True) if (run.out / "train_log.jsonl").is_file() else []
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    evals = [r["eval_loss"] for r in rows if r.get("eval_loss") is not None]
    tps = m.steady_tokens_per_s()
    info = {
        "started_at": run.started_at,
        "stop_reason": m.stop_reason,
        "stop_signal": m.signal_name,
        "config": run.cfg.to_dict(),
        "backend": run.backend.name,
        "setup": run.setup.to_dict(),
        "sft": {"per_device_train_batch_size": run.trainer.args.per_device_train_batch_size,
                "gradient_accumulation_steps": run.trainer.args.gradient_accumulation_steps,
                "packing": bool(getattr(run.trainer.args, "packing", False)),
                "padding_free": bool(getattr(run.trainer.args, "padding_free", False)),
                "optim": str(run.trainer.args.optim)},
        "model": {"source": run.cfg.model_name, "path": run.source.model_path, "random_init": run.source.random_init,
                  "adapter_path": run.cfg.adapter_path, "load_notes": run.load_notes},
        "data": {"train": run.train_data.summary(), "eval": run.eval_data.summary() if run.eval_data else None},
        "device": run.device,
        "world_size": m.world_size,
        "global_batch": run.trainer.args.per_device_train_batch_size * run.trainer.args.gradient_accumulation_steps
        * m.world_size,
        "resumed_from": run.resume_from,
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "epoch": state.epoch,
        "tokens_trained": m.session_tokens,
        "tokens_trained_total": m.total_tokens(),
        "trained_tokens_per_s": round(tps, 1) if tps else None,
        "steps_measured": max(0, len(m.steps) - 1),
        **peak_gpu_memory(),
        "wall_time_s": round(wall_s, 2),
        "elapsed_s_total": round(m.elapsed_s(), 2),
        "cost_usd": round(m.cost_usd(), 6),
        "cost_usd_at_stop": round(m.cost_at_stop, 6) if m.cost_at_stop is not None else None,
        "max_cost_usd": run.cfg.max_cost_usd,
        "gpu_hourly_usd": run.cfg.gpu_hourly_usd,
        "projected_cost_usd": m.projected_cost_usd,
        "projection_tokens_per_s": m.estimate_tokens_per_s,
        "final_loss": losses[-1] if losses else None,
        "first_loss": losses[0] if losses else None,
        "final_eval_loss": evals[-1] if evals else None,
        "adapter_dir": str(run.out / "adapter") if (run.out / "adapter").is_dir() else None,
    }
    return write_run_json(run.out, info)


def train(cfg: TrainConfig) -> dict:
    """Train and return the run.json content (see the module docstring for the output folder)."""
    run = prepare_run(cfg)
    return run_training(run)
