"""Trainer callbacks and pieces: the per-step log, the budget guard, graceful stop on SIGTERM/SIGINT, the progress bar,
and the pieces the run's trainer class is built from (`trainer_class`: token count, CPU distributed resume, the loss).

They report to the run's one `RunMeter` (t2s_fast/train/budget.py) and ask it for the decisions: what a step,
an evaluation or a save took, the tokens of the real batches (counted by the trainer piece `CountTokens`), whether
to stop before the budget or for a signal. The meter alone owns the time, token and dollar figures.
"""

from __future__ import annotations

import logging
import signal
import time

from transformers import TrainerCallback

from t2s_fast import distributed
from t2s_fast.jsonl import append_jsonl
from t2s_fast.train.budget import RunMeter

log = logging.getLogger(__name__)

CHECKPOINT_DONE = "t2s_checkpoint_complete"


class CountTokens:
    """Trainer piece: counts the non-padding tokens of every micro-batch it trains on, for the run's meter:
    attention_mask.sum() for padded batches; for padding-free (flattened) batches every position is a real token."""

    meter: RunMeter

    def training_step(self, model, inputs, *args, **kwargs):
        ids = inputs.get("input_ids")
        if "attention_mask" in inputs and inputs["attention_mask"] is not None:
            n = int(inputs["attention_mask"].sum().item())
        elif ids is not None:
            n = int(ids.numel())
        else:
            n = 0
        labels = inputs.get("labels")
        self.meter.count_batch(n, int((labels != -100).sum().item()) if labels is not None else 0)
        return super().training_step(model, inputs, *args, **kwargs)


class CpuDistributedResume:
    """Trainer piece: resume the optimizer of a multi-process CPU run.

    transformers maps the optimizer state to args.device when world_size > 1; under multi-CPU DDP that is
    "cpu:0", which torch.load cannot restore to (the CPU tests of a distributed resume). For that one call only,
    torch.load is given map_location "cpu"; on a GPU or a single process nothing changes."""

    def _load_optimizer_and_scheduler(self, checkpoint):
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


def trainer_class(base_cls, meter: RunMeter) -> type:
    """The SFTTrainer in use (TRL's or Unsloth's patched one) with the run's pieces: the loss where TRL's fused
    kernel cannot run (train/loss.py, logged), the token count, and the CPU distributed resume."""
    from t2s_fast.train.loss import loss_pieces

    pieces = (*loss_pieces(), CountTokens, CpuDistributedResume)
    return type(f"T2S{base_cls.__name__}", (*pieces, base_cls), {"meter": meter})


class StepLogCallback(TrainerCallback):
    """One JSON line per optimizer step in train_log.jsonl (and one per evaluation).

    Step time runs from the end of the previous step (or of its logging/eval/checkpoint) to the end of
    this one, so evaluation and checkpoint saving are not counted as training time; the evaluations and the
    saves are timed too, for the meter's budget decisions.
    """

    def __init__(self, meter: RunMeter, log_path):
        self.meter = meter
        self.log_path = log_path
        self.t_last = None
        self.pending = None
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
        tokens, loss_tokens = self.meter.take_pending()
        if distributed.is_distributed():  # every GPU's tokens (ranks get different lengths)
            tokens, loss_tokens = (int(v) for v in distributed.all_sum([tokens, loss_tokens]))
        self.pending = self.meter.record_step(state.global_step, state.epoch or 0.0, tokens, loss_tokens,
                                              max(1e-9, now - self.t_last))
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
            self.meter.record_eval(now - self._t_step_end)
        self.t_last = now

    def on_save(self, args, state, control, **kw):
        now = time.time()
        if self._t_step_end is not None:
            self.meter.record_save(now - self._t_step_end)
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


def _stop_and_save(control) -> None:
    control.should_training_stop = True
    control.should_save = True


class BudgetGuard(TrainerCallback):
    """Stops training (checkpoint + adapter saved) when the meter says going on could take the cost past
    --max-cost-usd (`RunMeter.should_stop_for_budget`: what it reserves, and why)."""

    def __init__(self, meter: RunMeter):
        self.meter = meter

    @staticmethod
    def _eval_due(args, step: int) -> bool:
        every = getattr(args, "eval_steps", None)
        strategy = str(getattr(args, "eval_strategy", "no"))
        return bool(every) and strategy.endswith("steps") and (step % int(every) == 0 or (step + 1) % int(every) == 0)

    def on_step_end(self, args, state, control, **kw):
        if control.should_training_stop:
            return
        if self.meter.should_stop_for_budget(state.global_step, self._eval_due(args, state.global_step)):
            _stop_and_save(control)


class AgreeOnStop(TrainerCallback):
    """Under DDP: stop (and save) on every rank as soon as any rank's budget guard or signal guard says so.

    Ranks measure time themselves and a SIGTERM may reach them a step apart; a rank that stopped alone
    would leave the others blocked in the next gradient all-reduce. Runs after BudgetGuard and SignalGuard."""

    REASONS = ("budget", "interrupted")

    def __init__(self, meter: RunMeter):
        self.meter = meter

    def on_step_end(self, args, state, control, **kw):
        flags = distributed.any_true(control.should_training_stop, control.should_save,
                                     *(self.meter.stop_reason == r for r in self.REASONS))
        control.should_training_stop, control.should_save = flags[0], flags[1]
        for reason, on in zip(self.REASONS, flags[2:]):
            if on:
                self.meter.adopt_stop(reason)


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
        if self.meter.note_signal(name):
            raise KeyboardInterrupt(f"second {name}")
        log.warning("%s received: finishing this step, then saving a checkpoint and the adapter "
                    "(send it again to abort now)", name)

    def on_step_end(self, args, state, control, **kw):
        if self.meter.should_stop_for_signal():
            _stop_and_save(control)


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
            if remaining > 0:
                post["$total~"] = f"{m.projected_total_usd(remaining):.4f}"
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
