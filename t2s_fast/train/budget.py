"""The run's meter: the one owner of a training run's time, tokens and dollars, and of the decisions they drive.

The GPU is paid from the moment it is rented, so the clock starts before the model loads and a resumed run
carries on the time its interrupted sessions spent. Cost = elapsed hours x gpu_hourly_usd x number of GPUs.

`prepare_run` makes one `RunMeter` per run. The trainer callbacks report what they measured to it (tokens of a
micro-batch, a step, an evaluation, a save, a signal) and ask it what to do (stop before the budget? afford the
final evaluation?); only the meter changes its own figures and the run's stop reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

log = logging.getLogger(__name__)


@dataclass
class RunMeter:
    gpu_hourly_usd: float
    world_size: int = 1
    max_cost_usd: float | None = None
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
    last_save_s: float = 0.0  # how long the last checkpoint save took (0: none yet)

    MIN_SAVE_S: ClassVar[float] = 1.0
    FINALIZE_S: ClassVar[float] = 2.0

    # ------------------------------------------------------------------------------------------ reading
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

    def eval_estimate_s(self) -> float:
        """Time an evaluation will take: the last one measured, else 4 steps' worth (a first guess)."""
        return self.last_eval_s or 4 * self.recent_step_time()

    def projected_total_usd(self, remaining_steps: int) -> float:
        """Dollars at the end if the remaining steps run as fast as the last 20 (the progress bar's figure)."""
        recent = self.steps[-20:]
        mean_dt = sum(s["step_time_s"] for s in recent) / len(recent) if recent else 0.0
        return self.cost_usd() + remaining_steps * mean_dt * self.usd_per_s()

    # ------------------------------------------------------------------------------------------ measurements
    def count_batch(self, tokens: int, loss_tokens: int) -> None:
        """One micro-batch's non-padding tokens and labelled tokens (this process)."""
        self.pending_tokens += tokens
        self.pending_loss_tokens += loss_tokens

    def take_pending(self) -> tuple[int, int]:
        """(tokens, loss tokens) counted since the last optimizer step on this process, then reset."""
        counts = (self.pending_tokens, self.pending_loss_tokens)
        self.pending_tokens = self.pending_loss_tokens = 0
        return counts

    def record_step(self, step: int, epoch: float, tokens: int, loss_tokens: int, step_time_s: float) -> dict:
        """An optimizer step's train_log.jsonl record (loss and learning rate come later, from the trainer's log)."""
        self.session_tokens += tokens
        rec = {"step": step, "epoch": round(epoch, 4), "loss": None, "learning_rate": None,
               "trained_tokens": tokens, "loss_tokens": loss_tokens, "step_time_s": round(step_time_s, 4),
               "tokens_per_s": round(tokens / step_time_s, 1), "tokens_total": self.total_tokens(),
               "elapsed_s": round(self.elapsed_s(), 2), "cost_usd": round(self.cost_usd(), 6)}
        self.steps.append(rec)
        return rec

    def record_eval(self, seconds: float) -> None:
        self.last_eval_s = seconds

    def record_save(self, seconds: float) -> None:
        self.last_save_s = seconds

    # ------------------------------------------------------------------------------------------ resume
    def carry_over(self, log_path: Path, ckpt_step: int | None) -> list[dict] | None:
        """Count what the interrupted session(s) spent, from their train_log.jsonl: all the elapsed time (steps
        beyond the checkpoint were paid too) and, resuming from a checkpoint, the tokens up to it. Returns the
        log lines to keep (later steps are redone), None without a log. ``ckpt_step`` None: no checkpoint, the
        run restarts at step 0 and only the money carries over. Every rank reads it (the budget decisions need
        the same figures everywhere); rank 0 alone rewrites the log."""
        from t2s_fast.jsonl import read_jsonl

        if not log_path.is_file():
            return None
        rows = read_jsonl(log_path, tolerate_torn_tail=True)
        self.prior_elapsed_s = float(max((r.get("elapsed_s", 0.0) for r in rows), default=0.0))
        if ckpt_step is None:
            return None
        kept = [r for r in rows if r.get("step", 0) <= ckpt_step]
        self.prior_tokens = int(max((r.get("tokens_total", 0) for r in kept if "tokens_total" in r), default=0))
        return kept

    # ------------------------------------------------------------------------------------------ decisions
    def plan(self, tokens: int, tokens_per_s: float) -> tuple[float, float, float]:
        """The start-of-run projection: (seconds already spent, hours, dollars) for ``tokens`` more trained tokens
        at ``tokens_per_s`` per GPU; kept as the run's projected cost."""
        spent_s = self.elapsed_s()
        hours = (spent_s + tokens / (tokens_per_s * self.world_size)) / 3600
        cost = hours * self.gpu_hourly_usd * self.world_size
        self.projected_cost_usd, self.estimate_tokens_per_s, self.planned_tokens = round(cost, 4), round(tokens_per_s,
                                                                                                         1), tokens
        return spent_s, hours, cost

    def should_stop_for_budget(self, step: int, eval_due: bool) -> bool:
        """Whether going on one more step could take the cost past --max-cost-usd; if so the run stops here, for
        the budget. Going on costs: that step (as slow as the slowest of the last five); an evaluation when this
        step or the next is an eval step (the last one measured, else four steps' worth); and, for the stop that
        must follow, a checkpoint save and the final adapter save (each as long as the last save, at least a step
        and at least MIN_SAVE_S before any save was timed), all with 25% margin, plus FINALIZE_S for the loss
        plot and run.json (at $3.44/h, 2 s is $0.002)."""
        if self.max_cost_usd is None:
            return False
        step_s = self.recent_step_time()
        save_s = max(self.last_save_s or self.MIN_SAVE_S, step_s)
        eval_s = self.eval_estimate_s() if eval_due else 0.0
        reserve_s = 1.25 * (step_s + eval_s + 2 * save_s) + self.FINALIZE_S
        now = self.cost_usd()
        if now + reserve_s * self.usd_per_s() <= self.max_cost_usd:
            return False
        self.stop_reason, self.cost_at_stop = "budget", now
        log.warning("budget guard: $%.4f spent, the next step would pass --max-cost-usd %.4f; "
                    "stopping at step %d and saving the adapter", now, self.max_cost_usd, step)
        return True

    def can_afford_eval(self) -> bool:
        """Whether the closing evaluation (1.25 x the estimate) still fits under --max-cost-usd."""
        return self.max_cost_usd is None or \
            self.cost_usd() + 1.25 * self.eval_estimate_s() * self.usd_per_s() < self.max_cost_usd

    def note_signal(self, name: str) -> bool:
        """A SIGTERM/SIGINT arrived; True when it is the second (abort now), False for the first (stop after
        this step)."""
        if self.signal_name:
            return True
        self.signal_name = name
        return False

    def should_stop_for_signal(self) -> bool:
        """After a step: stop (interrupted) when a signal arrived."""
        if self.signal_name:
            self.stop_reason = "interrupted"
        return bool(self.signal_name)

    def adopt_stop(self, reason: str) -> None:
        """Under DDP: another rank stopped for ``reason``; this rank stops for it too unless it has its own."""
        if self.stop_reason != "completed":
            return
        self.stop_reason = reason
        if reason == "budget" and self.cost_at_stop is None:
            self.cost_at_stop = self.cost_usd()

    def end(self, reason: str) -> None:
        """The run ended otherwise: out of memory, or aborted by a second signal."""
        self.stop_reason = reason
