"""transformers + PEFT generation: one model, every adapter loaded, mixed-adapter batches.

Used on CPUs (tests, laptops) and on GPUs where vLLM is not installed (the H200 image). All adapters are
loaded into one PeftModel with `load_adapter`, so there is one model load for any number of adapters. A batch
of one adapter runs with that adapter active (the base model: adapters disabled); a batch that mixes adapters
lets each row choose its own through PEFT's `adapter_names=` argument ("__base__" = no adapter), which is
correct but slower, so the evaluation harness hands this backend its requests adapter by adapter.
"""

from __future__ import annotations

import logging

from t2s_fast.errors import T2SError, first_line
from t2s_fast.generate.base import BASE_ADAPTER, GenRequest, GenResult, GenSettings, stop_token_ids
from t2s_fast.prompt import decode

log = logging.getLogger(__name__)


def load_base_model(base_model: str, *, dtype, device: str):
    """A local folder / hub id via from_pretrained, or a config.json as a random-init model (logged loudly)."""
    from transformers import AutoModelForCausalLM

    from t2s_fast.models import build_random_init_model, is_config_file

    if is_config_file(base_model):
        import torch

        # Built directly on the target device: initialising 8B random weights on the CPU takes minutes.
        with torch.device(device):
            model = build_random_init_model(base_model, dtype=dtype)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
        except OSError as exc:
            raise T2SError(f"--base-model {base_model}: cannot load a model from it ({exc})") from None
    return model.to(device)


class _RepetitionStop:
    """A transformers stopping criterion that ends a row whose tail repeats (`tail_repeats`, vLLM's rule), and
    remembers how many tokens that row had generated when it stopped."""

    def __init__(self, guard, prompt_len: int):
        self.guard, self.prompt_len = guard, prompt_len
        self.stopped_at: dict[int, int] = {}

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        from t2s_fast.generate.base import tail_repeats

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        need = self.guard.min_pattern * self.guard.min_count
        if input_ids.shape[1] - self.prompt_len < need:
            return done
        for row, ids in enumerate(input_ids[:, self.prompt_len:].tolist()):
            if row not in self.stopped_at and tail_repeats(ids, self.guard):
                self.stopped_at[row] = len(ids)
            done[row] = row in self.stopped_at
        return done


class _Progress:
    """A stopping criterion that never stops: it reports the tokens generated so far to ``callback`` (a progress
    bar), for long generations on a CPU."""

    def __init__(self, callback, prompt_len: int):
        self.callback, self.prompt_len = callback, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.callback(input_ids.shape[1] - self.prompt_len)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class HFGenerator:
    name = "hf"
    # PEFT's mixed-adapter forward (adapter_names=) splits every LoRA layer's batch per adapter; batches of one
    # adapter run the plain LoRA path instead, so the harness orders requests adapter by adapter for us.
    prefers_adapter_grouping = True

    def __init__(self, *, base_model: str, adapters: dict[str, str], tokenizer_dir: str,
                 batch_size: int | None = None, device: str | None = None, dtype: str | None = None,
                 seed: int = 0):
        import torch
        from transformers import AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        torch_dtype = getattr(torch, dtype)
        if self.device.startswith("cuda"):
            # cuDNN SDPA pays 1-2 ms of host setup per call (measured on the H200, ../shared/notes); decoding makes
            # one call per layer per token, so the flash/efficient kernels are much faster here.
            torch.backends.cuda.enable_cudnn_sdp(False)
        self.batch_size = batch_size or (64 if self.device.startswith("cuda") else 8)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        except (OSError, ValueError) as exc:
            raise T2SError(f"--tokenizer {tokenizer_dir}: cannot load it ({first_line(exc)})") from None
        self.tokenizer.padding_side = "left"  # decoder-only batches: pad on the left so every row ends together
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = load_base_model(base_model, dtype=torch_dtype, device=self.device)
        self.adapter_names = list(adapters)
        if adapters:
            from t2s_fast.adapters import check_adapter_flag, load_adapter_checked

            for name, path in adapters.items():
                check_adapter_flag(name, path)
            first, *rest = self.adapter_names
            model = load_adapter_checked(model, adapters[first], is_trainable=False, base_name=base_model,
                                         adapter_name=first)
            for name in rest:
                model.load_adapter(str(adapters[name]), adapter_name=name, is_trainable=False)
        self.model = model.eval()
        self.stop_ids = stop_token_ids(self.tokenizer, getattr(self.model, "generation_config", None))
        self.seed = seed
        self.progress = None  # callable(tokens generated so far in this batch): set it to watch a long generation

    def generate(self, requests: list[GenRequest], settings: GenSettings) -> list[GenResult]:
        import torch
        from transformers import StoppingCriteriaList

        unknown = {r.adapter for r in requests} - set(self.adapter_names) - {BASE_ADAPTER}
        if unknown:
            raise T2SError(f"requests name adapter(s) not loaded: {', '.join(sorted(unknown))}")
        results: list[GenResult] = []
        for i in range(0, len(requests), self.batch_size):
            chunk = requests[i:i + self.batch_size]
            enc = self.tokenizer([r.prompt for r in chunk], return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.device)
            kwargs = dict(max_new_tokens=settings.max_new_tokens, eos_token_id=self.stop_ids,
                          pad_token_id=self.tokenizer.pad_token_id)
            guard, criteria = None, []
            if settings.repetition_guard is not None:
                guard = _RepetitionStop(settings.repetition_guard, enc["input_ids"].shape[1])
                criteria.append(guard)
            if self.progress is not None:
                criteria.append(_Progress(self.progress, enc["input_ids"].shape[1]))
            if criteria:
                kwargs["stopping_criteria"] = StoppingCriteriaList(criteria)
            if settings.greedy:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                # One seed per batch: HF samples a batch from one generator, so per-request seeds cannot apply.
                torch.manual_seed(settings.seed + chunk[0].seed)
                kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=None)
            with torch.inference_mode(), self._adapters_for(chunk, kwargs):
                out = self.model.generate(**enc, **kwargs)
            new_tokens = out[:, enc["input_ids"].shape[1]:].tolist()
            for row, (req, ids) in enumerate(zip(chunk, new_tokens)):
                n, finish = len(ids), "length"
                for j, tid in enumerate(ids):
                    if tid in self.stop_ids:
                        n, finish = j + 1, "stop"
                        break
                stopped = guard.stopped_at.get(row) if guard is not None else None
                if stopped is not None and (stopped < n or finish == "length"):  # ended by the guard, not eos
                    n, finish = stopped, "repetition"
                text = decode(self.tokenizer, ids[:n], skip_special_tokens=True)
                results.append(GenResult(key=req.key, adapter=req.adapter, text=text, n_tokens=n, finish=finish))
        return results

    def _adapters_for(self, chunk: list[GenRequest], kwargs: dict):
        """A context that applies the chunk's adapters: one adapter -> make it the active one (plain LoRA
        forward); the base model -> adapters disabled; a mix -> PEFT's per-row ``adapter_names``."""
        import contextlib

        if not self.adapter_names:
            return contextlib.nullcontext()
        names = {r.adapter for r in chunk}
        if len(names) > 1:
            kwargs["adapter_names"] = [r.adapter for r in chunk]
            return contextlib.nullcontext()
        (name,) = names
        if name == BASE_ADAPTER:
            return self.model.disable_adapter()
        self.model.set_adapter(name)
        return contextlib.nullcontext()

    def close(self) -> None:
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
