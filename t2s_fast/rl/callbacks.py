"""What each GRPO step records, beside what `train`'s callbacks already do (the dollar meter, the budget stop,
SIGTERM handling, checkpoint markers; `train/callbacks.py`).

A step of GRPO is three kinds of work: generating the rollouts (the colocated engine, the weight sync included),
scoring them (the reward's executor), and the forward/backward passes and the optimizer step. `timed_trainer_class`
wraps the trainer's generation and reward methods with a clock and counts the tokens each training micro-batch
holds, and `RLStepLog` writes per optimizer step, into train_log.jsonl: the loss, the mean reward and its spread,
`frac_reward_zero_std` (the share of groups whose completions all got the same reward, which teach nothing), the
mean completion length, the match and failure rates, the seconds spent generating, scoring and training, and the
tokens trained on (prompt + completion; `loss_tokens`: the completions') with the training step's tokens/s, and
`padding_share`: the share of the micro-batches' token positions that were padding (TRL pads a step's prompts to
its longest; `--length-grouped-steps` makes a step's prompts alike in length).
"""

from __future__ import annotations

import time

from transformers import TrainerCallback

from t2s_fast.train.budget import RunMeter
from t2s_fast.train.callbacks import StepLogCallback

# TRL GRPOTrainer log keys -> train_log.jsonl keys
LOGGED = {"reward": "reward", "reward_std": "reward_std", "frac_reward_zero_std": "frac_reward_zero_std",
          "completions/mean_length": "completion_length", "completions/clipped_ratio": "clipped_ratio",
          "entropy": "entropy", "kl": "kl", "grad_norm": "grad_norm",
          # vLLM's log-probability of each sampled token against the training model's (TRL's importance-sampling
          # correction computes both): near 0 while the LoRA weights reach the engine, large if they do not
          "sampling/sampling_logp_difference/mean": "sync_logp_diff_mean",
          "sampling/sampling_logp_difference/max": "sync_logp_diff_max",
          "sampling/importance_sampling_ratio/mean": "importance_ratio_mean",
          # 0: some sequence's ratio passed TRL's cap (3) and was masked out of the loss
          "sampling/importance_sampling_ratio/min": "importance_ratio_min"}


class StepClock:
    """Seconds spent generating and scoring since the last optimizer step, and the token positions its training
    micro-batches held (padding included)."""

    def __init__(self):
        self.generation_s = 0.0
        self.reward_s = 0.0
        self.batch_tokens = 0

    def take(self) -> dict:
        out = {"generation_s": round(self.generation_s, 3), "reward_s": round(self.reward_s, 3),
               "batch_tokens": self.batch_tokens}
        self.generation_s = self.reward_s = 0.0
        self.batch_tokens = 0
        return out


def timed_trainer_class(base_cls, clock: StepClock, meter: RunMeter, *mixins):
    """``base_cls`` (TRL's GRPOTrainer or Unsloth's) whose rollout generation and reward scoring are timed, and
    whose training micro-batches are counted into ``meter``: the non-padding prompt and completion tokens, and the
    completion tokens as the ones the loss is taken on."""

    class TimedGRPOTrainer(*mixins, base_cls):
        def compute_loss(self, model, inputs, *args, **kwargs):  # once per micro-batch, on the prepared rollouts
            prompt, completion = inputs.get("prompt_mask"), inputs.get("completion_mask")
            done = int(completion.sum().item()) if completion is not None else 0
            meter.count_batch(done + (int(prompt.sum().item()) if prompt is not None else 0), done)
            clock.batch_tokens += sum(m.numel() for m in (prompt, completion) if m is not None)
            return super().compute_loss(model, inputs, *args, **kwargs)

        def _generate(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return super()._generate(*args, **kwargs)
            finally:
                clock.generation_s += time.perf_counter() - t0

        def _calculate_rewards(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return super()._calculate_rewards(*args, **kwargs)
            finally:
                clock.reward_s += time.perf_counter() - t0

    TimedGRPOTrainer.__name__ = f"Timed{base_cls.__name__}"
    return TimedGRPOTrainer


class RLStepLog(StepLogCallback):
    """`train`'s step log (time, dollars, checkpoint markers) plus what a GRPO step means: reward, zero-variance
    groups, completion length, match/failure rates and where the step's time went."""

    def __init__(self, meter: RunMeter, log_path, clock: StepClock, reward):
        super().__init__(meter, log_path)
        self.clock, self.reward = clock, reward

    def on_step_end(self, args, state, control, **kw):
        super().on_step_end(args, state, control, **kw)
        if self.pending is not None:
            timing = self.clock.take()
            train_s = max(0.0, self.pending["step_time_s"] - timing["generation_s"] - timing["reward_s"])
            self.pending.update(timing, train_s=round(train_s, 3), **self.reward.take_stats())
            if train_s > 0:  # the training step's own throughput (tokens_per_s spreads them over the whole step)
                self.pending["train_tokens_per_s"] = round(self.pending["trained_tokens"] / train_s, 1)
            if self.pending["batch_tokens"]:  # the share of the micro-batches' positions that were padding
                share = 1 - self.pending["trained_tokens"] / self.pending["batch_tokens"]
                self.pending["padding_share"] = round(share, 4)

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and self.pending is not None and self.pending["step"] == state.global_step:
            self.pending.update({ours: float(logs[theirs]) for theirs, ours in LOGGED.items() if theirs in logs})
        super().on_log(args, state, control, logs=logs, **kw)


class RLProgress(TrainerCallback):
    """One line per logged step on stderr: step/total, reward, zero-variance share, length, seconds per step split
    into generation / reward / training (with the training step's tokens/s), dollars so far and projected at the
    end, ETA."""

    def __init__(self, meter: RunMeter):
        self.meter = meter

    def on_log(self, args, state, control, logs=None, **kw):
        import sys

        m = self.meter
        if not m.steps or m.steps[-1]["step"] != state.global_step or "reward" not in (logs or {}):
            return
        rec, remaining = m.steps[-1], max(0, state.max_steps - state.global_step)
        eta_s = remaining * m.recent_step_time()
        print(f"rl: step {state.global_step}/{state.max_steps} reward {logs['reward']:.3f} "
              f"zero-std {logs.get('frac_reward_zero_std', float('nan')):.2f} "
              f"len {logs.get('completions/mean_length', float('nan')):.0f} | "
              f"{rec['step_time_s']:.1f} s/step (gen {rec.get('generation_s', 0):.1f}, reward "
              f"{rec.get('reward_s', 0):.1f}, train {rec.get('train_s', 0):.1f} at "
              f"{rec.get('train_tokens_per_s', 0):,.0f} tok/s)"
              + (f" | sync dlogp {logs['sampling/sampling_logp_difference/mean']:.3f}"
                 if "sampling/sampling_logp_difference/mean" in logs else "")
              + f" | ${m.cost_usd():.3f}, "
              f"~${m.projected_total_usd(remaining):.3f} at the end, ETA {eta_s / 60:.0f} min", file=sys.stderr,
              flush=True)
