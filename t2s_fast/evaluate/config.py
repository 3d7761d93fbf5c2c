"""Settings of one evaluation run (the `t2s-fast eval` flags, one field each)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from t2s_fast.dtypes import HELP as DTYPE_HELP
from t2s_fast.dtypes import normalize_dtype
from t2s_fast.errors import T2SError
from t2s_fast.evaluate.names import parse_adapter_specs
from t2s_fast.sql.scorer import check_workers_timeout

SUITES = ("spider1", "spider2-lite", "jsonl", "heldout")
REPAIR_STRATEGIES = ("none", "resample", "error-feedback")
REPAIR_CHOICES = ("auto",) + REPAIR_STRATEGIES  # --repair: auto resolves to one of the strategies (`resolve_repair`)
# suites whose predictions are executed on SQLite files and scored by the Spider 1.0 rules: there a failing
# prediction can be repaired (spider2-lite is scored by its own rules, `sql/spider2.py`, and never repaired)
SQLITE_SUITES = ("spider1", "heldout", "jsonl")
DEFAULT_REPAIR = "resample"  # --repair auto where SQL is executed on SQLite (README.md: "How good it gets")
MAX_REPAIR_K = 999


@dataclass
class EvalConfig:
    base_model: str | None = field(default=None,
                                   metadata={"help": "Base model: hub id, local folder, packaged real model "
                                                     "(qwen2.5-coder-0.5b, "
                                              "qwen2.5-coder-1.5b, smollm2-135m), .gguf file, or a config.json "
                                              "(random-init model)."})
    out_dir: str | None = field(default=None, metadata={"help": "Run folder: predictions.jsonl, run_settings.json and "
                                                                "the reports."})
    adapters: dict[str, str] = field(default_factory=dict,
                                     metadata={"help": "LoRA adapters to evaluate, NAME -> folder (--adapter "
                                                       "NAME=PATH).",
                                               "flags": ("--adapter",), "metavar": "NAME=PATH"})
    include_base: bool = field(default=False, metadata={"help": "Also score the base model without any adapter (alone: "
                                                               "--include-base with no --adapter)."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer folder/id (default: the model's)."})
    suite: str = field(default="spider1",
                       metadata={"help": "spider1 (Spider 1.0 dev), spider2-lite, jsonl (--questions), or "
                                                        "heldout (--questions stage1_valid.jsonl from `prepare`, "
                                                        "scored "
                                                        "on its own Spider training databases: the set to choose on).",
                                                        "choices": SUITES})
    spider_dir: str | None = field(default=None,
                                   metadata={"help": "Spider 1.0 folder (dev.json, tables.json, database/) "
                                                                   "or, for spider2-lite, the Spider 2.0 folder."})
    split: str = field(default="dev", metadata={"help": "Which split file to read (<split>.json)."})
    questions: str | None = field(default=None, metadata={
        "help": "For --suite jsonl: prepared-format JSONL (db_id, question, sql, dialect, optional messages)."})
    db_root: str | None = field(default=None,
                                metadata={"help": "For --suite jsonl: folder of <db_id>/<db_id>.sqlite files."})
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N questions (after --db)."})
    dbs: list[str] = field(default_factory=list,
                           metadata={"help": "Only questions on these databases (repeatable --db).",
                                                           "flags": ("--db",), "metavar": "DB_ID"})
    backend: str = field(default="auto", metadata={"help": "auto (vLLM if installed and a GPU is present), vllm or hf.",
                                                    "choices": ("auto", "vllm", "hf")})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest generated SQL, in tokens."})
    batch_size: int | None = field(default=None, metadata={"help": "HF backend: prompts per generate call "
                                                                   "(default 64 on GPU, 8 on CPU); vLLM schedules its "
                                                                   "own."})
    workers: int = field(default=2, metadata={"help": "Processes executing SQL while scoring (0 = in this process)."})
    timeout: float = field(default=30.0, metadata={"help": "Seconds allowed per executed query (> 0)."})
    n_samples: int = field(default=1, metadata={"help": "Samples per question; >1 = self-consistency (majority vote "
                                                        "over execution results, invalid SQL skipped)."})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy (>= 0). Needed > 0 when --n-samples > 1."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    repetition_guard: bool = field(default=True, metadata={"help": "End a completion whose tail repeats one 2-64 token "
                                                                   "run 4 times in a row (a runaway loop) instead of "
                                                                   "letting it run to --max-new-tokens."})
    sample_values: int = field(default=3, metadata={"help": "Distinct sample values per column in the schema prompt "
                                                            "(use what training used)."})
    keep_distinct: bool = field(default=False, metadata={"help": "Compare results keeping duplicates even without "
                                                                 "DISTINCT (the official evaluator drops DISTINCT)."})
    force: bool = field(default=False, metadata={"help": "Discard predictions made with other settings and start over.",
                                                  "flags": ("--force", "--overwrite")})
    max_model_len: int = field(default=8192, metadata={"help": "vLLM: longest prompt + answer, in tokens."})
    gpu_memory_utilization: float = field(default=0.90, metadata={"help": "vLLM: share of GPU memory it may take."})
    tensor_parallel_size: int = field(default=1, metadata={"help": "vLLM: GPUs one engine spreads the model over."})
    data_parallel_size: int = field(default=1, metadata={"help": "vLLM: engines, each on its own tensor-parallel-size "
                                                                 "GPUs, sharing the questions (one process each)."})
    dtype: str | None = field(default=None, metadata={"help": f"Weights dtype: {DTYPE_HELP} (default bfloat16 on GPU, "
                                                              "float32 on CPU)."})
    question_values: int = field(default=0, metadata={"help": "Question-matched database values shown per column "
                                                              "beside the sample values (0 = off; use what training "
                                                              "used; t2s_fast.schema_values)."})
    repair: str = field(default="auto", metadata={"help": "Repair of predictions that fail to execute: auto (the "
                                                          "default: resample on suites executed on SQLite, i.e. "
                                                          "spider1, heldout and jsonl; none on spider2-lite), none "
                                                          "(plain greedy or --n-samples vote decoding), resample "
                                                          "(--repair-k new samples of the same prompt, the majority "
                                                          "result among those that execute) or error-feedback (a "
                                                          "repair prompt with the SQL and SQLite's error, --repair-k "
                                                          "samples).",
                                               "choices": REPAIR_CHOICES})
    repair_k: int = field(default=8, metadata={"help": "Completions generated per failing prediction by --repair."})
    repair_temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of the repair pass "
                                                                     "(0 = greedy, only with --repair-k 1)."})
    checkpoints: str | None = field(default=None,
                                    metadata={"help": "A `t2s-fast train` output folder: every checkpoint "
                                                                    "(step-N) and its final adapter (final) are "
                                                                    "evaluated "
                                                                    "in one engine, plotted against the eval loss, "
                                                                    "and the "
                                                                    "best by EX is named. Refuses Spider dev. Train "
                                                                    "with "
                                                                    "--save-total-limit 0 to keep every checkpoint.",
                                                                    "metavar": "RUN_DIR"})
    enforce_eager: bool = field(default=False, metadata={"help": "vLLM: no torch.compile and no CUDA graphs (faster "
                                                                 "engine start, slower generation)."})
    vllm_cache_dir: str | None = field(default=None, metadata={"help": "vLLM: keep its compile cache here (sets "
                                                                       "VLLM_CACHE_ROOT), so later engines of the same "
                                                                       "model and settings reuse its torch.compile "
                                                                       "artifacts."})

    def __post_init__(self):
        if self.checkpoints:
            from t2s_fast.evaluate.checkpoints import apply_run_dir

            apply_run_dir(self)
        for name in ("base_model", "out_dir"):
            if not getattr(self, name):
                raise T2SError(f"--{name.replace('_', '-')} is required (on the command line or in --config)")
        self.adapters = parse_adapter_specs(self.adapters)
        self.dtype = normalize_dtype(self.dtype)
        if self.suite not in SUITES:
            raise T2SError(f"--suite {self.suite!r}: choose one of {', '.join(SUITES)}")
        if not self.adapters and not self.include_base:
            raise T2SError("nothing to evaluate: give --adapter NAME=PATH (repeatable), or pass --include-base to "
                           "evaluate the base model alone")
        if self.temperature < 0:
            raise T2SError(f"--temperature {self.temperature:g}: must be 0 (greedy) or more")
        check_workers_timeout(self.workers, self.timeout)
        if self.n_samples < 1:
            raise T2SError(f"--n-samples {self.n_samples}: must be at least 1")
        if self.n_samples > 1 and self.temperature <= 0:
            raise T2SError(f"--n-samples {self.n_samples} with --temperature {self.temperature}: greedy decoding gives "
                           "the same answer every time; set --temperature > 0 (e.g. 0.7)")
        for name in ("tensor_parallel_size", "data_parallel_size"):
            if getattr(self, name) < 1:
                raise T2SError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if self.max_new_tokens < 1:
            raise T2SError(f"--max-new-tokens {self.max_new_tokens}: must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise T2SError(f"--limit {self.limit}: must be at least 1")
        if self.suite == "jsonl" and not self.questions:
            raise T2SError("--suite jsonl needs --questions FILE.jsonl (and --db-root DIR)")
        if self.suite == "heldout" and not self.questions:
            raise T2SError("--suite heldout needs --questions FILE.jsonl (e.g. data/prepared/stage1_valid.jsonl)")
        if self.questions and self.suite == "spider1":
            self.suite = "jsonl"
        if self.suite in ("spider1", "spider2-lite") and not self.spider_dir:
            raise T2SError(f"--suite {self.suite} needs --spider-dir DIR")
        self._check_levers()
        from t2s_fast.adapters import check_adapter_flag

        for name, path in self.adapters.items():
            check_adapter_flag(name, path)
        if self.checkpoints:
            from t2s_fast.evaluate.selection import refuse_spider_dev

            refuse_spider_dev(suite=self.suite, split=self.split, questions=self.questions, spider_dir=self.spider_dir,
                              what="eval --checkpoints")

    def _check_levers(self) -> None:
        """The accuracy levers (question-matched values, repair); --repair auto is resolved here, so
        run folders, reports, resume checks and ablation arms record the strategy that ran."""
        if self.question_values < 0:
            raise T2SError(f"--question-values {self.question_values}: must be 0 (off) or more")
        if self.repair not in REPAIR_CHOICES:
            raise T2SError(f"--repair {self.repair!r}: choose one of {', '.join(REPAIR_CHOICES)}")
        auto = self.repair == "auto"
        if auto:
            self.repair = resolve_repair(self.suite, self.n_samples)
        if self.repair == "none":
            return
        with explained_if_auto(auto, f"--repair auto is {self.repair} on --suite {self.suite}"):
            check_repair_settings(self.repair, self.repair_k, self.repair_temperature)
        if self.n_samples > MAX_REPAIR_K:
            raise T2SError(f"--n-samples {self.n_samples} with --repair: at most {MAX_REPAIR_K} samples")

    @property
    def adapter_names(self) -> list[str]:
        """Evaluated names in report order: the base first (when included), then adapters as given."""
        from t2s_fast.generate.base import BASE_ADAPTER

        return ([BASE_ADAPTER] if self.include_base else []) + list(self.adapters)


@dataclass
class ReportConfig:
    """The `t2s-fast report` settings."""

    run_dirs: tuple[str, ...] = field(default=(), metadata={"help": "Eval run folders, each with its report.json.",
                                                            "argument": True, "required": True})
    out: str | None = field(default=None, metadata={"help": "Folder for comparison.md/html (default: the first run "
                                                            "folder)."})


def resolve_repair(suite: str, n_samples: int = 1) -> str:
    """What --repair auto means for an evaluation: resample where the predictions are executed on SQLite (the
    suites of SQLITE_SUITES), none elsewhere (spider2-lite) and with more samples than a repair pass allows."""
    return DEFAULT_REPAIR if suite in SQLITE_SUITES and n_samples <= MAX_REPAIR_K else "none"


@contextmanager
def explained_if_auto(auto: bool, what_auto_chose: str):
    """A repair setting refused under the default --repair auto says where the repair came from and how to turn it
    off (`eval`, `infer`); under an explicit --repair the error is left as it is."""
    try:
        yield
    except T2SError as exc:
        if not auto:
            raise
        raise T2SError(f"{exc} ({what_auto_chose}; --repair none turns it off)") from None


def check_repair_settings(repair: str, k: int, temperature: float) -> None:
    """--repair-k and --repair-temperature of a repair pass (`eval --repair`, `infer --repair`)."""
    if not 1 <= k <= MAX_REPAIR_K:
        raise T2SError(f"--repair-k {k}: must be between 1 and {MAX_REPAIR_K}")
    if temperature < 0 or (k > 1 and temperature == 0):
        raise T2SError(f"--repair-k {k} with --repair-temperature {temperature}: greedy "
                       "decoding repeats one answer; set --repair-temperature > 0 (e.g. 0.8) or --repair-k 1")
    if repair == "resample" and temperature == 0:
        raise T2SError("--repair resample with --repair-temperature 0 would regenerate the same failing SQL; "
                       "set --repair-temperature > 0")
