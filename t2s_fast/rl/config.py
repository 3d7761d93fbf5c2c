"""Settings of one GRPO run (`t2s-fast rl`). Field names are the flags' names; every field carries its help."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError

ENGINES = ("auto", "trl", "unsloth")
FILTER_ENGINES = ("separate", "colocated")
REWARDS = ("arctic", "binary")


@dataclass
class RLConfig:
    train_file: str = _f("", "Prepared chat JSONL to draw prompts from (`t2s-fast prepare`'s stage1_train.jsonl): "
                             "id, db_id, dialect, sql, messages. SQLite questions only.", required=True)
    adapter_path: str = _f("", "The SFT adapter to start from (a `t2s-fast train` run's adapter/ or checkpoint); "
                               "GRPO trains that same adapter further.", required=True)
    db_root: str = _f("", "Spider folder (or its database/ subfolder) holding <db_id>/<db_id>.sqlite for every "
                          "training question: the reward executes there.", required=True)
    output_dir: str = _f("", "Run folder: prompts/ (the filter pass), adapter/, checkpoints/, train_log.jsonl, "
                             "rl_curves.png, run.json.", required=True)
    model_name: str = _f("Qwen/Qwen3-8B", "Base model the adapter was trained on (as `train --model-name`).")
    tokenizer: str | None = _f(None, "Tokenizer folder or id (default: the model's).")
    engine: str = _f("auto", "auto|trl|unsloth: who generates inside the training process. trl: TRL's GRPOTrainer "
                             "with vLLM colocated (bf16 base); unsloth: Unsloth's fast_inference (4-bit base, vLLM "
                             "sharing its weights); auto: trl on a GPU with vLLM, else TRL with transformers "
                             "generation (CPU).", choices=ENGINES)
    # --- the prompt filter
    filter_samples: int = _f(8, "Samples per training prompt in the filter pass (K); 0: no filter pass, every "
                                "prompt is kept (speed measurements, a model that cannot answer yet).")
    filter_min_correct: int = _f(1, "Keep a prompt when at least this many of its K samples are right ...")
    filter_max_correct: int | None = _f(None, "... and at most this many (default: K - 1: never all right).")
    filter_temperature: float = _f(1.0, "Sampling temperature of the filter pass (the rollouts' own, by default).")
    filter_engine: str = _f("colocated", "colocated|separate: who samples the filter pass. colocated: the training "
                                         "process's colocated engine (engine trl on a GPU), once the trainer is "
                                         "built: no engine start of its own (1.5B, H100: 90 s for the pass against "
                                         "249 s), at most one generation batch of sequences at once; elsewhere it "
                                         "falls back to separate. separate: a vLLM engine of its own in a child "
                                         "process, on the whole card, stopped before training loads.",
                            choices=FILTER_ENGINES)
    max_prompts: int | None = _f(None, "Use at most this many training prompts (a seeded sample) before filtering.")
    # --- GRPO
    num_generations: int = _f(8, "Completions per prompt (the group GRPO compares within).")
    prompts_per_step: int = _f(16, "Prompts per optimizer step (x num_generations completions).")
    micro_batch_completions: int = _f(16, "Completions per forward/backward micro-batch (accumulated to a step).")
    sorted_micro_batches: bool = _f(True, "Cut a step's micro-batches from its rollouts sorted by length, each "
                                          "trimmed to its own longest prompt and completion, instead of TRL's random "
                                          "cut padded to the step's longest: the same update (a step sums its "
                                          "micro-batches) on fewer padded positions. Engine trl; Unsloth's trainer "
                                          "keeps its own.")
    skip_no_advantage: bool = _f(True, "With --sorted-micro-batches and a loss divided by the step's token count "
                                       "(dapo, cispo) at --beta 0: leave the rollouts without an advantage (a "
                                       "group whose completions all got one reward, `frac_reward_zero_std`) out of "
                                       "the training step. Their loss is zero, so the update is the same.")
    length_grouped_steps: int = _f(0, "Sort the prompts by length within groups of this many steps, then take the "
                                      "steps in a seeded random order: a step's prompts share one padded width "
                                      "(TRL pads every prompt of a step to its longest), so the training step "
                                      "computes less padding (a second epoch repeats the order); 0: TRL's "
                                      "random order.")
    max_completion_length: int = _f(256, "Longest completion in tokens.")
    temperature: float = _f(1.0, "Sampling temperature of the rollouts.")
    learning_rate: float = _f(1e-5, "Peak learning rate.")
    lr_scheduler_type: str = _f("constant", "Learning-rate schedule (transformers names).")
    warmup_ratio: float = _f(0.0, "Fraction of steps for linear warm-up.")
    num_train_epochs: float = _f(1.0, "Passes over the filtered prompts (ignored when --max-steps > 0).")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1: use epochs).")
    beta: float = _f(0.0, "KL coefficient against the starting adapter (0: no reference model, TRL's default).")
    loss_type: str = _f("dapo", "TRL GRPO loss (dapo, grpo, dr_grpo, bnpo, ...).")
    reward: str = _f("arctic", "arctic: 1 if the result matches the gold's, 0.1 if the SQL executes, 0 otherwise; "
                               "binary: 1 or 0.", choices=REWARDS)
    reward_workers: int = _f(8, "Worker processes executing the completions' SQL.")
    reward_timeout_s: float = _f(5.0, "Wall-clock limit per query when scoring a completion, seconds.")
    save_steps: int = _f(20, "Checkpoint every N optimizer steps (each one `eval --checkpoints` can evaluate).")
    save_total_limit: int | None = _f(None, "Keep at most this many checkpoints (default: all, for the choice).")
    logging_steps: int = _f(1, "Log every N optimizer steps.")
    gradient_checkpointing: bool = _f(True, "Recompute activations in the backward pass (less memory).")
    load_in_4bit: bool = _f(False, "Load the base in 4-bit NF4 (engine unsloth; the trl engine keeps bf16 for the "
                                   "weight sync into vLLM).")
    vllm_gpu_memory_utilization: float = _f(0.3, "Share of GPU memory the colocated vLLM engine may take.")
    vllm_max_model_length: int = _f(4096, "Longest prompt + completion the colocated engine serves.")
    vllm_cache_dir: str | None = _f(None, "vLLM's compile cache folder (VLLM_CACHE_ROOT), shared by the filter pass's "
                                          "engine and the colocated one: a later engine of the same model starts "
                                          "faster (as `eval --vllm-cache-dir`).")
    seed: int = _f(3407, "Random seed (prompt order, sampling).")
    resume: bool = _f(False, "Continue from the last complete checkpoint in OUTPUT_DIR/checkpoints.")
    max_cost_usd: float | None = _f(None, "Stop cleanly (adapter saved) before the run's cost would exceed this.")
    gpu_hourly_usd: float = _f(3.44, "Price of one GPU hour, for the cost estimate and the budget guard.")
    report_to: str = _f("none", "Trainer integrations to report to (none, wandb, tensorboard, ...).")

    @property
    def max_correct(self) -> int:
        return self.filter_samples - 1 if self.filter_max_correct is None else self.filter_max_correct

    @property
    def completions_per_step(self) -> int:
        return self.prompts_per_step * self.num_generations

    def validate(self) -> "RLConfig":
        for name in ("train_file", "adapter_path", "db_root", "output_dir"):
            if not getattr(self, name):
                raise T2SError(f"--{name.replace('_', '-')} is required")
        if self.engine not in ENGINES:
            raise T2SError(f"--engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.filter_engine not in FILTER_ENGINES:
            raise T2SError(f"--filter-engine {self.filter_engine!r}: choose one of {', '.join(FILTER_ENGINES)}")
        if self.reward not in REWARDS:
            raise T2SError(f"--reward {self.reward!r}: choose one of {', '.join(REWARDS)}")
        if self.filter_samples < 0:
            raise T2SError(f"--filter-samples must be 0 (no filter pass) or more (got {self.filter_samples})")
        for name in ("num_generations", "prompts_per_step", "micro_batch_completions",
                     "max_completion_length", "save_steps", "logging_steps", "reward_workers"):
            if getattr(self, name) < 1:
                raise T2SError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.length_grouped_steps < 0:
            raise T2SError(f"--length-grouped-steps must be 0 (off) or more (got {self.length_grouped_steps})")
        if self.num_generations < 2:
            raise T2SError("--num-generations must be at least 2: GRPO compares completions within a group")
        if self.filter_samples and not 0 <= self.filter_min_correct <= self.max_correct <= self.filter_samples:
            raise T2SError(f"--filter-min-correct {self.filter_min_correct} and --filter-max-correct "
                           f"{self.max_correct} must satisfy 0 <= min <= max <= --filter-samples {self.filter_samples}")
        if self.completions_per_step % self.micro_batch_completions:
            raise T2SError(f"--prompts-per-step x --num-generations = {self.completions_per_step} completions per "
                           f"step must be a multiple of --micro-batch-completions {self.micro_batch_completions}")
        if self.max_steps == 0 or (self.max_steps < 0 and self.num_train_epochs <= 0):
            raise T2SError("nothing to train: give --max-steps > 0 or --num-train-epochs > 0")
        if self.learning_rate < 0:
            raise T2SError("--learning-rate must not be negative (0 is the weight-sync control)")
        if self.max_cost_usd is not None and self.max_cost_usd <= 0:
            raise T2SError("--max-cost-usd must be positive")
        if not 0 < self.vllm_gpu_memory_utilization < 1:
            raise T2SError("--vllm-gpu-memory-utilization must be between 0 and 1")
        if self.reward_timeout_s <= 0:
            raise T2SError("--reward-timeout-s must be positive")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
