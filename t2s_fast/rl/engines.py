"""Who generates the rollouts and trains the policy: the engine seam of the RL stage.

- ``trl``: TRL's `GRPOTrainer` on a transformers model with the adapter loaded by PEFT. On a GPU with vLLM it
  generates in a vLLM engine colocated in this process (`use_vllm=True, vllm_mode="colocate"`), into which TRL
  merges and syncs the LoRA weights before each generation; the base stays bf16, which that sync needs. Without
  a GPU it generates with transformers (the CPU path the tests run).
- ``unsloth``: Unsloth's `fast_inference`: `FastLanguageModel` loads the base (4-bit with --load-in-4bit) with a
  vLLM engine that shares its weights, the adapter's LoRA is rebuilt with `get_peft_model` and its weights
  loaded into it, and Unsloth's patched `GRPOTrainer` generates through that engine.
- ``auto``: ``trl``.

TRL 1.15's `GRPOTrainer` computes log-probabilities with a fused LM head whose kernels import triton, which CPU
torch wheels lack; without triton the trainer class gets `PlainLogprobs`, the same quantity from the full
logits (and says so in the log). Everything else about the step is TRL's.
"""

from __future__ import annotations

import importlib.util
import logging
import os

from t2s_fast.errors import T2SError
from t2s_fast.rl.config import RLConfig

log = logging.getLogger(__name__)


def resolve_engine(name: str) -> str:
    if name == "auto":
        return "trl"
    if name == "unsloth" and importlib.util.find_spec("unsloth") is None:
        raise T2SError("--engine unsloth: the 'unsloth' package is not installed here (pip install -e '.[gpu]'); "
                       "use --engine trl")
    return name


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def generates_with_vllm(engine: str) -> bool:
    return engine == "unsloth" or (on_gpu() and importlib.util.find_spec("vllm") is not None)


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


class PlainLogprobs:
    """Per-token log-probabilities (and entropies) of the completion tokens from the full logits, in place of
    TRL's fused LM head (which needs triton). Same quantity, more memory; for CPU runs."""

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **_multimodal):
        import torch

        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[start:start + batch_size], attention_mask[start:start + batch_size]
            logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=logits_to_keep + 1).logits
            logits = logits[:, :-1, :].float() / self.temperature  # position t predicts token t + 1
            logp_all = torch.log_softmax(logits, dim=-1)
            logps.append(logp_all.gather(-1, ids[:, -logits_to_keep:].unsqueeze(-1)).squeeze(-1))
            if compute_entropy:
                entropies.append(-(logp_all.exp() * logp_all).sum(-1))
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None


# the rollout tensors aligned with the completion tokens (batch x completion width), trimmed with them
COMPLETION_ALIGNED = ("completion_ids", "completion_mask", "old_per_token_logps", "importance_sampling_ratio",
                      "sampling_per_token_logps", "ref_per_token_logps", "tool_mask")


def _take_rows(batch: dict, rows: list[int]) -> dict:
    """The rollouts ``rows`` (in that order): every per-row value moves with its row, as TRL's shuffle moves them."""
    import torch

    index = torch.tensor(rows, dtype=torch.long)

    def take(v):
        if isinstance(v, torch.Tensor) and v.ndim >= 1:
            return v[index.to(v.device)]
        if isinstance(v, list):
            return [v[i] for i in rows]
        return v  # None, a 0-dim tensor (num_items_in_batch), a plain number

    return {k: take(v) for k, v in batch.items()}


def length_sorted(batch: dict) -> dict:
    """A step's rollouts reordered by prompt length, then completion length: consecutive rows, the completions of
    one prompt among them, then share a width."""
    prompt_len = batch["prompt_mask"].sum(1).tolist()
    completion_len = batch["completion_mask"].sum(1).tolist()
    return _take_rows(batch, sorted(range(len(prompt_len)), key=lambda i: (prompt_len[i], completion_len[i], i)))


# an advantage this small is a group whose completions all got the same reward (TRL divides by its std + 1e-4)
NO_ADVANTAGE = 1e-6


def with_advantage(batch: dict, at_least: int) -> dict:
    """The rollouts with an advantage, in their order; rollouts without one (a group whose completions all got
    the same reward) contribute nothing to a loss taken per token times the advantage, so they are left out.
    ``at_least`` rows stay (the first ones without, when too few have one): every micro-batch needs a row."""
    adv = batch["advantages"]
    if adv.ndim != 1:
        return batch
    informative = (adv.abs() > NO_ADVANTAGE).tolist()
    rows = [i for i, keep in enumerate(informative) if keep]
    rows += [i for i, keep in enumerate(informative) if not keep][:max(0, at_least - len(rows))]
    return _take_rows(batch, sorted(rows))


def split_rows(batch: dict, k: int) -> list[dict]:
    """``k`` micro-batches of consecutive rows, their sizes differing by at most one: equal when the rows divide
    by ``k`` (as TRL's split makes them), else only a loss divided by the whole step's token count is unchanged."""
    n = len(batch["advantages"])
    bounds = [n * i // k for i in range(k + 1)]
    return [_take_rows(batch, list(range(bounds[i], bounds[i + 1]))) for i in range(k)]


def trimmed(chunk: dict) -> dict:
    """A micro-batch cut to its own longest prompt and completion: the prompt columns (left-padded) that are
    padding on every row and the completion columns (right-padded) past every row's last token go. The loss is
    the same: the model never attends to a masked position, no loss is taken on one, and a causal model's
    earlier positions do not see later ones (RoPE depends on positions' differences only)."""
    out = dict(chunk)
    prompt_mask, completion_mask = chunk["prompt_mask"], chunk["completion_mask"]
    used = prompt_mask.any(0).nonzero()
    first = int(used[0]) if len(used) else prompt_mask.size(1) - 1
    out["prompt_ids"], out["prompt_mask"] = chunk["prompt_ids"][:, first:], prompt_mask[:, first:]
    used = completion_mask.any(0).nonzero()
    width, full = (int(used[-1]) + 1 if len(used) else 1), completion_mask.size(1)
    for key in COMPLETION_ALIGNED:
        v = chunk.get(key)
        if v is not None and v.ndim == 2 and v.size(1) == full:
            out[key] = v[:, :width]
    return out


class SortedMicroBatches:
    """TRL's GRPOTrainer cuts a step's rollouts into micro-batches in a random order, each padded to the step's
    longest prompt and completion. When a step makes one optimizer update from one generation (this stage's
    setting: the update sums the micro-batches' losses, so their order and makeup do not change it), this cuts
    them from the rollouts sorted by length and trims each to its own longest (`length_sorted`, `trimmed`):
    the same update on fewer padded positions. Any other setting keeps TRL's way: several updates per generation,
    a loss normalized by each micro-batch's own token count (bnpo), an entropy mask or bonus taken per
    micro-batch.

    With ``skip_no_advantage`` and a loss divided by the whole step's token count with no KL term (dapo, cispo:
    each token's loss is a multiple of its advantage), the rollouts without an advantage are left out first
    (`with_advantage`): the same update again, without their forward and backward passes."""

    skip_no_advantage = False

    def _cut_is_free(self) -> bool:
        """Whether the step's update is the same however its rollouts are cut into micro-batches."""
        return (self.num_iterations == 1
                and self.args.steps_per_generation == self.args.gradient_accumulation_steps
                and self.loss_type != "bnpo" and self.top_entropy_quantile == 1.0
                and not getattr(self, "_entropy_bonus_enabled", False))

    def _rows_are_free(self) -> bool:
        """Whether leaving out the rollouts without an advantage leaves the update as it is."""
        return self.skip_no_advantage and self.loss_type in ("dapo", "cispo") and self.beta == 0.0

    def _prepare_inputs(self, generation_batch):
        if not (self.model.training and self._cut_is_free()):
            return super()._prepare_inputs(generation_batch)
        k = self.args.steps_per_generation
        if self._step % k == 0 or self._buffered_inputs is None:  # None: resumed from a checkpoint
            rollouts = self._generate_and_score_completions(generation_batch)
            if self._rows_are_free():
                rollouts = with_advantage(rollouts, k)
            # a whole generation batch is per_device_train_batch_size x k rows: equal micro-batches, as TRL's
            self._buffered_inputs = [trimmed(c) for c in split_rows(length_sorted(rollouts), k)]
        return self._buffered_inputs[self._step % k]


def trainer_base(engine: str):
    if engine == "unsloth":
        import unsloth  # noqa: F401  (patches trl's GRPOTrainer: must come before trl)
    from trl import GRPOTrainer

    return GRPOTrainer


def load_policy(cfg: RLConfig, engine: str, model_path: str, tokenizer_dir: str):
    """(model with the trainable adapter, tokenizer)."""
    if engine == "unsloth":
        return _load_unsloth(cfg, model_path, tokenizer_dir)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from t2s_fast.adapters import load_adapter_checked

    gpu = on_gpu()
    if cfg.load_in_4bit:
        log.warning("--load-in-4bit is ignored by the trl engine: its weight sync into vLLM needs the bf16 base")
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if gpu else torch.float32,
                                                attn_implementation="sdpa")
    model = load_adapter_checked(base, cfg.adapter_path, is_trainable=True, base_name=cfg.model_name)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return model, tokenizer


def _load_unsloth(cfg: RLConfig, model_path: str, tokenizer_dir: str):
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from unsloth import FastLanguageModel

    from t2s_fast.adapters import ADAPTER_WEIGHTS, read_adapter_config

    acfg = read_adapter_config(cfg.adapter_path)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=model_path, max_seq_length=cfg.vllm_max_model_length, load_in_4bit=cfg.load_in_4bit,
        fast_inference=True, max_lora_rank=int(acfg.get("r", 16)),
        gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, local_files_only=os.path.isdir(model_path))
    targets = acfg.get("target_modules") or []
    model = FastLanguageModel.get_peft_model(
        model, r=int(acfg.get("r", 16)), lora_alpha=int(acfg.get("lora_alpha", 32)),
        lora_dropout=float(acfg.get("lora_dropout", 0.0)), target_modules=sorted(targets),
        use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False, random_state=cfg.seed)
    weights = os.path.join(cfg.adapter_path, ADAPTER_WEIGHTS[0])
    result = set_peft_model_state_dict(model, load_file(weights))
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:
        raise T2SError(f"--adapter-path {cfg.adapter_path}: {len(unexpected)} of its weights match no LoRA layer "
                       f"of the rebuilt adapter (e.g. {unexpected[0]})")
    return model, tokenizer


def samples_in_trainer(cfg: RLConfig, engine: str) -> bool:
    """Whether the filter pass samples in the trainer's colocated vLLM engine (--filter-engine colocated, the
    default, with engine trl and vLLM on a GPU); elsewhere it takes an engine of its own, and the log says so."""
    if cfg.filter_engine != "colocated" or not cfg.filter_samples:
        return False
    if engine == "trl" and on_gpu() and generates_with_vllm(engine):
        return True
    log.info("the filter pass takes an engine of its own: sampling in the trainer's needs engine trl with vLLM on a "
             "GPU (here: engine %s, %s)", engine, "GPU" if on_gpu() else "no GPU")
    return False


def colocated_sampler(trainer, temperature: float):
    """``sample(prompts, k)``: k completions (text) per prompt from the trainer's colocated vLLM engine, in order,
    decoded as TRL decodes a rollout. The engine first gets the policy's weights (the starting adapter merged, as
    before every generation); the filter's temperature stands in for the rollouts' while it samples."""
    generation, tokenizer = trainer.vllm_generation, trainer.processing_class
    synced = False

    def sample(prompts: list[str], k: int) -> list[list[str]]:
        nonlocal synced
        if not synced:
            generation.sync_weights()
            synced = True
        ids = tokenizer(text=prompts)["input_ids"]  # a text prompt, tokenized as TRL tokenizes it
        rollout_temperature, generation.temperature = generation.temperature, temperature
        try:
            _, completion_ids, _, _ = generation.generate(prompts=[p for p in ids for _ in range(k)], images=None,
                                                          num_generations=k)
        finally:
            generation.temperature = rollout_temperature
        texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        return [texts[i * k:(i + 1) * k] for i in range(len(prompts))]

    return sample


def use_engine_cache(cfg: RLConfig, engine: str) -> None:
    """Point the in-process vLLM engine at --vllm-cache-dir before anything imports vLLM (Unsloth does on import)."""
    if cfg.vllm_cache_dir and generates_with_vllm(engine):
        from t2s_fast.generate.vllm import use_cache_dir

        use_cache_dir(cfg.vllm_cache_dir)


def grpo_args(cfg: RLConfig, engine: str, ckpt_dir: str):
    """TRL's GRPOConfig for this run: one generation of prompts_per_step x num_generations completions per
    optimizer step, accumulated over micro-batches of micro_batch_completions."""
    from trl import GRPOConfig

    from t2s_fast.prompt import CHAT_TEMPLATE_KWARGS

    gpu, vllm = on_gpu(), generates_with_vllm(engine)
    kwargs = dict(
        output_dir=ckpt_dir, per_device_train_batch_size=cfg.micro_batch_completions,
        gradient_accumulation_steps=cfg.completions_per_step // cfg.micro_batch_completions,
        num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature, learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio, num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps,
        beta=cfg.beta, loss_type=cfg.loss_type, logging_steps=cfg.logging_steps, logging_first_step=True,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit, seed=cfg.seed,
        data_seed=cfg.seed, report_to=[] if cfg.report_to in ("none", "") else cfg.report_to, disable_tqdm=True,
        bf16=gpu, gradient_checkpointing=cfg.gradient_checkpointing and engine != "unsloth",
        chat_template_kwargs=dict(CHAT_TEMPLATE_KWARGS), log_completions=False, remove_unused_columns=False,
        use_vllm=vllm, shuffle_dataset=cfg.length_grouped_steps == 0,  # grouped: the dataset's order is the steps'
    )
    if vllm and engine == "trl":
        kwargs.update(vllm_mode="colocate", vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                      vllm_max_model_length=cfg.vllm_max_model_length)
        # colocate runs vLLM in this process as a one-rank "distributed" world
        for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1"),
                           ("MASTER_PORT", str(29500 + os.getpid() % 1000))):
            os.environ.setdefault(key, value)
    if gpu and cfg.gradient_checkpointing and engine == "trl":
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if not gpu:
        kwargs["use_cpu"] = True
    return GRPOConfig(**kwargs)
