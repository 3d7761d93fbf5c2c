"""vLLM generation with LoRA hot-swapping: one engine, every adapter, one `generate` call.

`LLM(enable_lora=True, max_loras=<number of adapters>, max_lora_rank=<largest rank, rounded up>)` loads the
base model once; each request carries its own `LoRARequest(name, int_id, path)` (None = base model), and
vLLM batches requests for different adapters together (punica kernels). That is why the harness gives this
backend all (question, adapter) requests in a single call instead of one pass per adapter.

vLLM is imported only here, when this backend is chosen (it cannot be installed on CPU machines).
"""

from __future__ import annotations

import logging
from pathlib import Path

from t2s_fast.adapters import adapter_rank
from t2s_fast.errors import T2SError
from t2s_fast.generate.base import BASE_ADAPTER, GenRequest, GenResult, GenSettings, stop_token_ids

log = logging.getLogger(__name__)

# vLLM's LoRAConfig accepts only these ranks for max_lora_rank (vllm/config/lora.py, MaxLoRARanks).
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def round_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that is >= ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise T2SError(f"LoRA rank {rank} is above vLLM's maximum {VLLM_LORA_RANKS[-1]}; use --backend hf")


def disable_flashinfer_sampler_if_absent() -> bool:
    """Set VLLM_USE_FLASHINFER_SAMPLER=0 when flashinfer is not importable (and the user has not chosen).

    vLLM 0.26.0 on an H200 without flashinfer fails at engine start unless its FlashInfer top-k/top-p sampler
    is switched off (seen on the GPU machine, whose carried vLLM wheel set has no flashinfer). Set in the
    environment, not in Python state: the engine core runs in a child process. Returns whether it set it.
    """
    import importlib.util
    import os

    if "VLLM_USE_FLASHINFER_SAMPLER" in os.environ or importlib.util.find_spec("flashinfer") is not None:
        return False
    os.environ["VLLM_USE_FLASHINFER_SAMPLER"] = "0"
    log.info("flashinfer is not installed: VLLM_USE_FLASHINFER_SAMPLER=0 (vLLM's own sampler)")
    return True


def _finish(completion) -> str:
    """'stop', 'length' or 'repetition' (vLLM 0.26 ends a guarded loop with stop_reason 'repetition_detected')."""
    if getattr(completion, "stop_reason", None) == "repetition_detected":
        return "repetition"
    return "length" if completion.finish_reason == "length" else "stop"


def use_cache_dir(folder: str | Path) -> Path:
    """Point vLLM's cache (torch.compile artifacts under torch_compile_cache/) at ``folder`` through its
    VLLM_CACHE_ROOT variable (vllm/envs.py), before vLLM reads it: set here, before the engine is built, and
    inherited by vLLM's engine-core and worker processes."""
    import os

    path = Path(folder).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["VLLM_CACHE_ROOT"] = str(path)
    return path


def prepare_engine_environment(vllm_cache_dir: str | Path | None) -> None:
    """Everything vLLM reads from the environment, set once before the engine (and its child processes) start:
    the compile cache folder, the sampler without flashinfer, and a spawned (not forked) engine core. A parent
    that has touched CUDA (a GPU check, a model conversion) leaves a forked child unable to use it ("Cannot
    re-initialize CUDA in forked subprocess", seen on the H200)."""
    import os

    if vllm_cache_dir:
        use_cache_dir(vllm_cache_dir)
    disable_flashinfer_sampler_if_absent()
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")


class VLLMGenerator:
    name = "vllm"
    prefers_adapter_grouping = False  # vLLM swaps LoRA adapters per request inside one batch
    batch_size = None  # everything in one generate call; vLLM schedules its own batches

    def __init__(self, *, base_model: str, adapters: dict[str, str], tokenizer_dir: str,
                 max_model_len: int = 8192, gpu_memory_utilization: float = 0.90, dtype: str | None = None,
                 seed: int = 0, materialize_dir: str | None = None, tensor_parallel_size: int = 1,
                 enforce_eager: bool = False, vllm_cache_dir: str | None = None, **_ignored):
        dtype = dtype or "bfloat16"  # callers pass None for "the backend's default" (EvalConfig.dtype)
        prepare_engine_environment(vllm_cache_dir)  # before vLLM is imported or reads its settings
        # Imported here so CPU machines never need vllm.
        from vllm.lora.request import LoRARequest

        from t2s_fast.models import is_config_file, materialize_random_init

        model_path = base_model
        if is_config_file(base_model):
            # vLLM loads only from a folder: save the random-init model once (reused on later runs).
            target = Path(materialize_dir or Path(base_model).parent / "random-init-model")
            model_path = str(materialize_random_init(base_model, target, tokenizer=tokenizer_dir, dtype=dtype))
        self.adapters = dict(adapters)
        # Ids start at 1: vLLM treats lora_int_id 0 as "no LoRA".
        self.lora_requests = {name: LoRARequest(name, i, str(path))
                              for i, (name, path) in enumerate(self.adapters.items(), start=1)}
        engine_kwargs = dict(model=model_path, tokenizer=tokenizer_dir, dtype=dtype, seed=seed,
                             max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                             enable_prefix_caching=True, tensor_parallel_size=tensor_parallel_size,
                             enforce_eager=bool(enforce_eager))
        if self.adapters:
            max_rank = max(adapter_rank(n, p) for n, p in self.adapters.items())
            engine_kwargs.update(enable_lora=True, max_loras=len(self.adapters),
                                 max_lora_rank=round_lora_rank(max_rank))
        log.info("vLLM engine: %s", engine_kwargs)
        from vllm import LLM

        self.llm = LLM(**engine_kwargs)
        # the shared stop rule (vLLM also stops at the generation config's eos ids, which the rule includes)
        self.stop_ids = stop_token_ids(self.llm.get_tokenizer())

    def _sampling_params(self, requests: list[GenRequest], settings: GenSettings):
        from vllm import SamplingParams

        common = {"max_tokens": settings.max_new_tokens, "stop_token_ids": self.stop_ids}
        if settings.repetition_guard is not None:
            from vllm.sampling_params import RepetitionDetectionParams

            g = settings.repetition_guard
            common["repetition_detection"] = RepetitionDetectionParams(
                max_pattern_size=g.max_pattern, min_pattern_size=g.min_pattern, min_count=g.min_count)
        if settings.greedy:
            return SamplingParams(temperature=0.0, **common)
        # A seed per request makes each sample repeatable whatever else is in the batch.
        return [SamplingParams(temperature=settings.temperature, top_p=settings.top_p, seed=settings.seed + r.seed,
                               **common) for r in requests]

    def generate(self, requests: list[GenRequest], settings: GenSettings) -> list[GenResult]:
        unknown = {r.adapter for r in requests} - set(self.lora_requests) - {BASE_ADAPTER}
        if unknown:
            raise T2SError(f"requests name adapter(s) not loaded: {', '.join(sorted(unknown))}")
        lora = [None if r.adapter == BASE_ADAPTER else self.lora_requests[r.adapter] for r in requests]
        kwargs = {"lora_request": lora} if self.adapters else {}
        outputs = self.llm.generate([r.prompt for r in requests], self._sampling_params(requests, settings),
                                    use_tqdm=True, **kwargs)
        results = []
        for req, out in zip(requests, outputs):
            completion = out.outputs[0]
            results.append(GenResult(key=req.key, adapter=req.adapter, text=completion.text,
                                     n_tokens=len(completion.token_ids), finish=_finish(completion)))
        return results

    def close(self) -> None:
        self.llm = None


# ---------------------------------------------------------------------------------------------- data parallel
# vLLM's offline `LLM` runs one engine per process; its own data-parallel examples
# (examples/offline_inference/data_parallel.py) start one process per DP rank, pin it to its GPUs with
# CUDA_VISIBLE_DEVICES and give it a slice of the prompts. Dense models need no coordination between the
# engines, so that is what this does: N spawned workers, each a VLLMGenerator on tensor_parallel_size GPUs.

def _dp_worker(conn, rank: int, gpus: str, kwargs: dict) -> None:
    import os

    os.environ["CUDA_VISIBLE_DEVICES"] = gpus  # before vLLM/torch touch CUDA in this fresh (spawned) process
    try:
        gen = VLLMGenerator(**kwargs)
        conn.send(("ready", {"rank": rank, "cuda_visible_devices": gpus, "pid": os.getpid()}))
        while True:
            msg = conn.recv()
            if msg is None:
                break
            requests, settings = msg
            conn.send(("ok", gen.generate(requests, settings)))
        gen.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


class VLLMDataParallel:
    """`--data-parallel-size N`: N vLLM engines in N processes, requests dealt round-robin (longest-first
    order from the harness, so the engines get similar work), results returned in request order."""

    name = "vllm"
    batch_size = None

    def __init__(self, *, data_parallel_size: int, tensor_parallel_size: int = 1, gpus: list[str] | None = None,
                 **kwargs):
        import multiprocessing as mp
        import os

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if gpus is None:
            if visible:
                gpus = [g.strip() for g in visible.split(",") if g.strip()]
            else:
                import torch

                gpus = [str(i) for i in range(torch.cuda.device_count())]
        need = data_parallel_size * tensor_parallel_size
        if len(gpus) < need:
            raise T2SError(f"--data-parallel-size {data_parallel_size} x --tensor-parallel-size {tensor_parallel_size} "
                           f"needs {need} GPUs; {len(gpus)} visible")
        ctx = mp.get_context("spawn")  # CUDA cannot be re-initialized in a forked child
        self.workers, self.engines = [], []
        for rank in range(data_parallel_size):
            mine = ",".join(gpus[rank * tensor_parallel_size:(rank + 1) * tensor_parallel_size])
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_dp_worker, args=(child, rank, mine,
                                                        dict(kwargs, tensor_parallel_size=tensor_parallel_size)),
                               daemon=True)
            proc.start()
            self.workers.append((proc, parent))
        for proc, conn in self.workers:
            self.engines.append(self._receive(conn))

    @staticmethod
    def _receive(conn):
        kind, payload = conn.recv()
        if kind == "error":
            raise T2SError(f"vLLM data-parallel engine failed: {payload}")
        return payload

    def generate(self, requests: list[GenRequest], settings: GenSettings) -> list[GenResult]:
        n = len(self.workers)
        for i, (_, conn) in enumerate(self.workers):
            conn.send((requests[i::n], settings))
        by_key = {}
        for _, conn in self.workers:
            for res in self._receive(conn):
                by_key[res.key] = res
        return [by_key[r.key] for r in requests]

    def close(self) -> None:
        for proc, conn in self.workers:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for proc, _ in self.workers:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
        self.workers = []
