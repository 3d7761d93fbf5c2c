"""Trainer callbacks: the per-step log, the budget guard, graceful stop on SIGTERM/SIGINT, and the progress bar.

They share one `RunMeter`: wall time since the run started (the GPU is paid from the moment it is rented,
so model loading counts), tokens trained per optimizer step (counted from the real batches by
`counting_trainer_class`), and the cost so far. Cost = elapsed hours x gpu_hourly_usd x number of GPUs.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field

from transformers import TrainerCallback

from t2s_fast import distributed
from t2s_fast.jsonl import append_jsonl

log = logging.getLogger(__name__)

CHECKPOINT_DONE = "t2s_checkpoint_complete"


@dataclass
class RunMeter:
    gpu_hourly_usd: float
    world_size: int = 1
    t0: float = field(default_factory=time.time)
    prior_elapsed_s: float = 0.0  # from the interrupted run(s) this one resumes
    prior_tokens: int = 0
    # counted by the trainer, per micro-batch, reset at each optimizer step
    pending_tokens: int = 0
    pending_loss_tokens: int = 0
    session_tokens: int = 0
    steps: list = field(default_factory=list)  # this session's step records
    stop_reason: str = "completed"
    cost_at_stop: float | None = None
    signal_name: str | None = None
    projected_cost_usd: float | None = None
    estimate_tokens_per_s: float = 0.0
    planned_tokens: int = 0
    last_eval_s: float = 0.0  # how long the last evaluation on the eval file took (0: none yet)

    def eval_estimate_s(self) -> float:
        """Time an evaluation will take: the last one measured, else 4 steps' worth (a first guess)."""
        return self.last_eval_s or 4 * self.recent_step_time()

    def elapsed_s(self) -> float:
        return self.prior_elapsed_s + (time.time() - self.t0)

    def usd_per_s(self) -> float:
        return self.gpu_hourly_usd * self.world_size / 3600.0

    def cost_usd(self) -> float:
        return self.elapsed_s() * self.usd_per_s()

    def total_tokens(self) -> int:
        return self.prior_tokens + self.session_tokens

    def steady_tokens_per_s(self) -> float | None:
        """Trained tokens/s over this session's steps, excluding the first (compilation, allocator warm-up)."""
        steady = self.steps[1:]
        t = sum(s["step_time_s"] for s in steady)
        return sum(s["trained_tokens"] for s in steady) / t if t > 0 else None

    def recent_step_time(self) -> float:
        times = [s["step_time_s"] for s in self.steps[-5:]]
        return max(times) if times else 0.0


def _trl_fused_loss_available() -> bool:
    import torch

    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        return False
    return torch.cuda.is_available() and getattr(trl_utils, "_ChunkedLogProbFunction", None) is not None


def _labelled_positions_loss(trainer, model, inputs, return_outputs, num_items_in_batch):
    """Cross-entropy on the labelled (SQL) positions only, projecting just those hidden states through the LM head.

    Why: TRL 1.15's SFTTrainer always computes its loss through a fused LM head whose kernel is Triton
    (trl/kernels/chunked_logprob.py), which cannot run without a GPU; and the model's own loss would build
    logits for every position over Qwen3's 151k-token vocabulary, which dominates a small CPU model's step.
    This is the same quantity as TRL's: sum of -log p(label) over labelled tokens divided by
    num_items_in_batch (the labelled tokens of the whole accumulated step), or their mean otherwise.
    """
    import torch.nn.functional as F
    from transformers.modeling_outputs import CausalLMOutputWithPast

    labels = inputs["labels"]
    model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "seq_lengths")}
    # Positions whose next token is labelled in any row; `logits_to_keep` (an index tensor) makes the model
    # project only those through the LM head. The call goes through `model` itself, so a DDP wrapper sees
    # the forward it needs to all-reduce the gradients.
    keep = (labels[:, 1:] != -100).any(dim=0).nonzero().flatten()
    logits = model(**model_inputs, use_cache=False, logits_to_keep=keep).logits.float()
    targets = labels[:, keep + 1]
    mask = targets != -100
    loss_sum = F.cross_entropy(logits[mask], targets[mask], reduction="sum")
    if num_items_in_batch is not None and getattr(trainer, "model_accepts_loss_kwargs", False):
        loss = loss_sum / num_items_in_batch
        # num_items_in_batch counts the labelled tokens of ALL processes and DDP averages gradients over
        # them, so scale back up by the process count, as Trainer.compute_loss does (transformers trainer.py).
        if getattr(trainer.args, "average_tokens_across_devices", False) and trainer.accelerator.num_processes > 1:
            loss = loss * trainer.accelerator.num_processes
    else:
        loss = loss_sum / mask.sum().clamp(min=1)
    return (loss, CausalLMOutputWithPast(loss=loss)) if return_outputs else loss


def counting_trainer_class(base_cls, meter: RunMeter):
    """A subclass of the SFTTrainer in use (TRL's or Unsloth's patched one) that counts the non-padding
    tokens of every micro-batch it trains on: attention_mask.sum() for padded batches; for padding-free
    (flattened) batches every position is a real token."""

    fused_ok = _trl_fused_loss_available()

    class CountingTrainer(base_cls):
        if not fused_ok:
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                return _labelled_positions_loss(self, model, inputs, return_outputs, num_items_in_batch)

        def _load_optimizer_and_scheduler(self, checkpoint):
            # transformers maps the optimizer state to args.device when world_size > 1; under multi-CPU DDP
            # that is "cpu:0", which torch.load cannot restore to (CPU tests of a distributed resume).
            import torch

            if checkpoint is None or self.args.world_size <= 1 or self.args.device.type != "cpu":
                return super()._load_optimizer_and_scheduler(checkpoint)
            original = torch.load

            def load_on_cpu(*a, **kw):
                if kw.get("map_location") is not None:
                    kw["map_location"] = "cpu"
                return original(*a, **kw)

            torch.load = load_on_cpu
            try:
                return super()._load_optimizer_and_scheduler(checkpoint)
            finally:
                torch.load = original

        def training_step(self, model, inputs, *args, **kwargs):
            ids = inputs.get("input_ids")
            if "attention_mask" in inputs and inputs["attention_mask"] is not None:
                n = int(inputs["attention_mask"].sum().item())
            elif ids is not None:
                n = int(ids.numel())
            else:
                n = 0
            labels = inputs.get("labels")
            meter.pending_tokens += n
            if labels is not None:
                meter.pending_loss_tokens += int((labels != -100).sum().item())
            return super().training_step(model, inputs, *args, **kwargs)

    CountingTrainer.__name__ = f"Counting{base_cls.__name__}"
    return CountingTrainer


class StepLogCallback(TrainerCallback):
    """One JSON line per optimizer step in train_log.jsonl (and one per evaluation).

    Step time runs from the end of the previous step (or of its logging/eval/checkpoint) to the end of
    this one, so evaluation and checkpoint saving are not counted as training time.
    """

    def __init__(self, meter: RunMeter, log_path):
        self.meter = meter
        self.log_path = log_path
        self.t_last = None
        self.pending = None
        self.last_save_s = 0.0
        self._t_step_end = None

    def _flush(self):
        if self.pending is not None:
            if distributed.is_main():  # one log for the run, written by rank 0
                append_jsonl(self.log_path, [self.pending])
            self.pending = None

    def on_train_begin(self, args, state, control, **kw):
        self.t_last = time.time()

    def on_step_end(self, args, state, control, **kw):
        self._flush()
        now = time.time()
        dt = max(1e-9, now - self.t_last)
        m = self.meter
        if distributed.is_distributed():  # every GPU's tokens (ranks get different lengths)
            tokens, loss_tokens = (int(v) for v in distributed.all_sum([m.pending_tokens, m.pending_loss_tokens]))
        else:
            tokens, loss_tokens = m.pending_tokens, m.pending_loss_tokens
        m.pending_tokens = m.pending_loss_tokens = 0
        m.session_tokens += tokens
        rec = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "loss": None,
               "learning_rate": None, "trained_tokens": tokens, "loss_tokens": loss_tokens,
               "step_time_s": round(dt, 4), "tokens_per_s": round(tokens / dt, 1),
               "tokens_total": m.total_tokens(), "elapsed_s": round(m.elapsed_s(), 2),
               "cost_usd": round(m.cost_usd(), 6)}
        m.steps.append(rec)
        self.pending = rec
        self.t_last = now
        self._t_step_end = now

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if "loss" in logs and self.pending is not None and self.pending["step"] == state.global_step:
            self.pending["loss"] = float(logs["loss"])
            if "learning_rate" in logs:
                self.pending["learning_rate"] = float(logs["learning_rate"])
            if "grad_norm" in logs:
                self.pending["grad_norm"] = float(logs["grad_norm"])
            self._flush()
        if "eval_loss" in logs and distributed.is_main():
            append_jsonl(self.log_path, [{"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                                          "eval_loss": float(logs["eval_loss"]),
                                          "elapsed_s": round(self.meter.elapsed_s(), 2),
                                          "cost_usd": round(self.meter.cost_usd(), 6)}])
        self.t_last = time.time()

    def on_evaluate(self, args, state, control, **kw):
        now = time.time()
        if self._t_step_end is not None:  # evaluation runs right after on_step_end, before any save
            self.meter.last_eval_s = now - self._t_step_end
        self.t_last = now

    def on_save(self, args, state, control, **kw):
        now = time.time()
        if self._t_step_end is not None:
            self.last_save_s = now - self._t_step_end
        self.t_last = now
        # Trainer writes checkpoints in place, not atomically: mark the ones that finished, so --resume
        # never picks a checkpoint a SIGKILL cut in half.
        import os

        ckpt = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        distributed.barrier()  # every rank has written its part (rng_state_<rank>.pth) before the marker
        if distributed.is_main() and os.path.isdir(ckpt):
            with open(os.path.join(ckpt, CHECKPOINT_DONE), "w") as fh:
                fh.write(f"{state.global_step}\n")

    def on_train_end(self, args, state, control, **kw):
        self._flush()


class BudgetGuard(TrainerCallback):
    """Stops training (checkpoint + adapter saved) before going on could take the cost past --max-cost-usd.
    Going on one more step costs: that step (as slow as the slowest of the last five); an evaluation when this
    step or the next is an eval step (the last one measured, else four steps' worth); and, for the stop that
    must follow, a checkpoint save and the final adapter save (each as long as the last save, at least a step
    and at least MIN_SAVE_S before any save was timed), all with 25% margin, plus FINALIZE_S for the loss plot
    and run.json (at $3.44/h, 2 s is $0.002)."""

    MIN_SAVE_S = 1.0
    FINALIZE_S = 2.0

    def __init__(self, meter: RunMeter, max_cost_usd: float | None, step_log: StepLogCallback):
        self.meter = meter
        self.max_cost_usd = max_cost_usd
        self.step_log = step_log  # times the saves (last_save_s) and the evaluations (meter.last_eval_s)

    def _eval_due(self, args, step: int) -> bool:
        every = getattr(args, "eval_steps", None)
        strategy = str(getattr(args, "eval_strategy", "no"))
        return bool(every) and strategy.endswith("steps") and (step % int(every) == 0 or (step + 1) % int(every) == 0)

    def on_step_end(self, args, state, control, **kw):
        if self.max_cost_usd is None or control.should_training_stop:
            return
        m = self.meter
        step_s = m.recent_step_time()
        save_s = max(self.step_log.last_save_s or self.MIN_SAVE_S, step_s)
        eval_s = m.eval_estimate_s() if self._eval_due(args, state.global_step) else 0.0
        reserve_s = 1.25 * (step_s + eval_s + 2 * save_s) + self.FINALIZE_S
        now = m.cost_usd()
        if now + reserve_s * m.usd_per_s() > self.max_cost_usd:
            m.stop_reason = "budget"
            m.cost_at_stop = now
            control.should_training_stop = True
            control.should_save = True
            log.warning("budget guard: $%.4f spent, the next step would pass --max-cost-usd %.4f; "
                        "stopping at step %d and saving the adapter", now, self.max_cost_usd, state.global_step)


class AgreeOnStop(TrainerCallback):
    """Under DDP: stop (and save) on every rank as soon as any rank's budget guard or signal guard says so.

    Ranks measure time themselves and a SIGTERM may reach them a step apart; a rank that stopped alone
    would leave the others blocked in the next gradient all-reduce. Runs after BudgetGuard and SignalGuard."""

    REASONS = ("budget", "interrupted")

    def __init__(self, meter: RunMeter):
        self.meter = meter

    def on_step_end(self, args, state, control, **kw):
        m = self.meter
        flags = distributed.any_true(control.should_training_stop, control.should_save,
                                     *(m.stop_reason == r for r in self.REASONS))
        control.should_training_stop, control.should_save = flags[0], flags[1]
        for reason, on in zip(self.REASONS, flags[2:]):
            if on and m.stop_reason == "completed":
                m.stop_reason = reason
                if reason == "budget" and m.cost_at_stop is None:
                    m.cost_at_stop = m.cost_usd()


class SignalGuard(TrainerCallback):
    """SIGTERM / SIGINT: finish the current step, save a checkpoint and the adapter, stop. A second
    signal aborts at once."""

    def __init__(self, meter: RunMeter):
        self.meter = meter
        self._old = {}

    def install(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass

    def uninstall(self):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.meter.signal_name:
            raise KeyboardInterrupt(f"second {name}")
        self.meter.signal_name = name
        log.warning("%s received: finishing this step, then saving a checkpoint and the adapter "
                    "(send it again to abort now)", name)

    def on_step_end(self, args, state, control, **kw):
        if self.meter.signal_name:
            self.meter.stop_reason = "interrupted"
            control.should_training_stop = True
            control.should_save = True


class ProgressCallback(TrainerCallback):
    """A tqdm bar over optimizer steps: loss, trained tokens/s, ETA (tqdm's), dollars so far / projected."""

    def __init__(self, meter: RunMeter):
        self.meter = meter
        self.bar = None

    def on_train_begin(self, args, state, control, **kw):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step",
                        dynamic_ncols=True)

    def on_log(self, args, state, control, logs=None, **kw):
        if self.bar is None:
            return
        m = self.meter
        if m.steps and m.steps[-1]["step"] == state.global_step:
            self.bar.n = state.global_step
            rec = m.steps[-1]
            tps = m.steady_tokens_per_s() or rec["tokens_per_s"]
            post = {"loss": f"{rec['loss']:.4f}" if rec.get("loss") is not None else "-",
                    "tok/s": f"{tps:,.0f}", "$": f"{m.cost_usd():.4f}"}
            remaining = state.max_steps - state.global_step
            if remaining > 0 and m.steps:
                mean_dt = sum(s["step_time_s"] for s in m.steps[-20:]) / len(m.steps[-20:])
                post["$total~"] = f"{m.cost_usd() + remaining * mean_dt * m.usd_per_s():.4f}"
            self.bar.set_postfix(post, refresh=True)
        if "eval_loss" in (logs or {}):
            self.bar.write(f"step {state.global_step}: eval_loss {logs['eval_loss']:.4f}")

    def on_step_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
