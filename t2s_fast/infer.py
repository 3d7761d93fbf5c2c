"""`t2s-fast infer`: answer one question against a schema with a fine-tuned model; prints only the SQL.

The model is a LoRA adapter folder (its base is the adapter's `base_model_name_or_path` unless
`--base-model` says otherwise) or a merged/standalone model folder. The prompt comes from the shared
builder (`t2s_fast.prompt`), the schema from `--schema-file` (free text) or `--db` (a SQLite file rendered by
the one `t2s_fast.data.schema_text.schema_text`), exactly as in training and evaluation. Decoding is greedy,
through the transformers + PEFT generation engine eval uses (`generate/engines.make_generator`), with its stop
rule, followed by a repair pass where the SQL can be executed.

`--repair resample` (with `--db`) is eval's resample repair for one question: the greedy SQL is executed on the
database (the scorer's sandboxed executor); when it fails, `--repair-k` samples of the same prompt at
`--repair-temperature` come from one generate call, each is executed, and eval's majority vote picks the SQL
among those that execute (ties: the earliest sample); when none executes, the greedy SQL stays. stdout keeps only
the SQL; one line on stderr says what the repair did. The default `--repair auto` is resample when `--db` is given
with `--dialect sqlite` (as `eval`'s default on SQLite suites), none otherwise (`--schema-file`, other dialects):
greedy alone. `--repair none` always gives the greedy SQL alone.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError, first_line
from t2s_fast.generate.extract import extract_sql  # the eval extractor, so infer and eval agree

log = logging.getLogger(__name__)

ADAPTER = "adapter"  # the name the adapter of --model-path gets in the engine
REPAIRS = ("none", "resample")
REPAIR_CHOICES = ("auto",) + REPAIRS  # auto: resample with --db on SQLite, else none (InferConfig.__post_init__)
REPAIR_WORKERS = 2  # executor processes for the repair's queries (the scorer's default)
CPU_MAX_NEW_TOKENS = 256  # a Spider answer fits well within it; 512 greedy tokens took minutes on a 2-core CPU
GPU_MAX_NEW_TOKENS = 512


@dataclass
class InferConfig:
    model_path: str = _f("", "A LoRA adapter folder (from `t2s-fast train`), or a model: merged folder, hub id, "
                            "packaged alias (qwen2.5-coder-0.5b, ...) or .gguf file.", required=True)
    question: str = _f("", "The question in natural language.", required=True)
    db_id: str | None = _f(None, "Database name shown to the model (default: the --db file's stem; required with "
                                 "--schema-file).")
    dialect: str = _f("sqlite", "SQL dialect: sqlite, bigquery or snowflake.")
    schema_file: str | None = _f(None, "A text file with the schema (CREATE TABLE statements or free text).")
    db: str | None = _f(None, "A SQLite database file; its schema is rendered by the shared prompt builder.")
    base_model: str | None = _f(None, "Base model for an adapter (default: the adapter's base_model_name_or_path).")
    tokenizer: str | None = _f(None, "Tokenizer (default: the adapter's or model's folder).")
    max_new_tokens: int | None = _f(None, "Longest SQL to generate, in tokens (default: 512 on a GPU, "
                                          f"{CPU_MAX_NEW_TOKENS} on the CPU, as eval's default).")
    sample_values: int = _f(3, "Sample values per column shown with --db (training used the same setting).")
    external_knowledge: str | None = _f(None, "Optional external knowledge text (Spider 2.0 style).")
    question_values: int = _f(0, "Question-matched database values per column shown with --db (0 = off; "
                                 "use what training used).")
    repair: str = _f("auto", "When the greedy SQL fails to execute on --db: auto (the default: resample with --db "
                             "and --dialect sqlite, none otherwise), none (the greedy SQL alone), or resample "
                             "(--repair-k samples of the same prompt, the majority result among those that execute; "
                             "as `eval --repair resample`).", choices=REPAIR_CHOICES)
    repair_k: int = _f(8, "Samples drawn by --repair resample.")
    repair_temperature: float = _f(0.8, "Sampling temperature of --repair resample.")
    timeout: float = _f(30.0, "Seconds allowed per query executed by --repair (> 0).")

    def __post_init__(self):
        if self.repair not in REPAIR_CHOICES:
            raise T2SError(f"--repair {self.repair!r}: choose one of {', '.join(REPAIR_CHOICES)}")
        auto = self.repair == "auto"
        if auto:  # resolved here: what runs is what the config says
            self.repair = "resample" if self.db and self.dialect == "sqlite" else "none"
        if self.repair == "none":
            return
        from t2s_fast.evaluate.config import check_repair_settings, explained_if_auto
        from t2s_fast.sql.scorer import check_workers_timeout

        if not self.db:
            raise T2SError(f"--repair {self.repair} executes the SQL on a database: give --db PATH (a SQLite file)")
        if self.dialect != "sqlite":
            raise T2SError(f"--repair {self.repair} executes on SQLite: it needs --dialect sqlite, not {self.dialect}")
        with explained_if_auto(auto, "--repair auto is resample with --db on SQLite"):
            check_repair_settings(self.repair, self.repair_k, self.repair_temperature)
            check_workers_timeout(REPAIR_WORKERS, self.timeout)


def build_infer_messages(cfg: InferConfig) -> list[dict]:
    from t2s_fast.prompt import build_messages

    if bool(cfg.schema_file) == bool(cfg.db):
        raise T2SError("give exactly one of --schema-file F (schema text) or --db PATH (a SQLite file)")
    if not cfg.question.strip():
        raise T2SError("--question is empty")
    if cfg.db:
        from t2s_fast.data.schema_text import schema_text as render_schema_text
        from t2s_fast.schema import read_sqlite_schema
        from t2s_fast.schema_values import make_matcher

        db = Path(cfg.db)
        if not db.is_file():
            raise T2SError(f"{db}: SQLite database not found")
        db_id = cfg.db_id or db.stem
        schema = read_sqlite_schema(db, db_id=db_id, sample_values=cfg.sample_values)
        matcher = make_matcher(cfg.question_values)
        schema_text = render_schema_text(schema, cfg.dialect, None,
                                         question_values=matcher.match(db, cfg.question) if matcher else None).text
    else:
        if cfg.question_values:
            raise T2SError("--question-values reads the values from a database: use it with --db, not --schema-file")
        p = Path(cfg.schema_file)
        if not p.is_file():
            raise T2SError(f"{p}: schema file not found")
        schema_text = p.read_text(encoding="utf-8")
        if not schema_text.strip():
            raise T2SError(f"{p}: schema file is empty")
        db_id = cfg.db_id
        if not db_id:
            raise T2SError("--db-id is required with --schema-file")
    return build_messages(dialect=cfg.dialect, db_id=db_id, schema=schema_text, question=cfg.question,
                          external_knowledge=cfg.external_knowledge)


def inference_sources(model_path: str, *, base_model: str | None = None,
                      tokenizer: str | None = None) -> tuple[str, dict[str, str], str]:
    """(base model, {"adapter": folder} or {} for a plain model, tokenizer source) for --model-path: an adapter
    folder runs on its base (--base-model, else the adapter's base_model_name_or_path), a model alone."""
    from transformers import AutoConfig

    from t2s_fast.adapters import is_adapter_dir, read_adapter_config
    from t2s_fast.models import is_config_file, resolve_model

    model_path = resolve_model(model_path).path  # a packaged alias or .gguf: its cached folder; others as given
    base_model = resolve_model(base_model).path if base_model else None
    mp = Path(model_path)
    if not mp.exists() and (model_path.startswith((".", "/")) or model_path.endswith(".json")):
        raise T2SError(f"--model-path {model_path}: not found")
    if not is_adapter_dir(mp):
        if is_config_file(model_path):
            raise T2SError(f"--model-path {model_path}: cannot load it (a config file holds no weights)")
        _load(AutoConfig, model_path, "--model-path")  # a folder that holds no model fails here, in one line
        return model_path, {}, tokenizer or model_path
    acfg = read_adapter_config(mp)
    base = base_model or acfg.get("base_model_name_or_path")
    if not base:
        raise T2SError(f"{mp}: the adapter names no base model; pass --base-model")
    if is_config_file(base):
        raise T2SError(f"--base-model {base} is a config file; pass the model folder the adapter was trained on")
    _load(AutoConfig, base, "--base-model")
    tok_src = tokenizer or (str(mp) if (mp / "tokenizer_config.json").is_file() else base)
    return base, {ADAPTER: str(mp)}, tok_src


def infer(cfg: InferConfig) -> str:
    """The SQL for cfg.question (also what the CLI prints, alone); see ``answer``."""
    return answer(cfg)[0]


def answer(cfg: InferConfig) -> tuple[str, str | None]:
    """(the SQL for cfg.question, the repair's one-line note or None when it did not run): one greedy request
    through the generation engine eval uses (transformers + PEFT), so infer decodes and stops as eval does; with
    --repair resample, a greedy SQL that fails on --db is repaired (``repair_sql``) by the same engine."""
    from t2s_fast.generate.base import BASE_ADAPTER, GenRequest, GenSettings
    from t2s_fast.generate.engines import make_generator
    from t2s_fast.prompt import render_prompt

    if not cfg.model_path:
        raise T2SError("--model-path is required")
    messages = build_infer_messages(cfg)
    base, adapters, tok_src = inference_sources(cfg.model_path, base_model=cfg.base_model, tokenizer=cfg.tokenizer)
    batch = cfg.repair_k if cfg.repair != "none" else 1  # the repair samples decode as one batch
    gen = make_generator("hf", base_model=base, adapters=adapters, tokenizer_dir=tok_src, batch_size=batch)
    on_cpu = str(getattr(gen, "device", "cpu")).startswith("cpu")
    max_new = cfg.max_new_tokens or (CPU_MAX_NEW_TOKENS if on_cpu else GPU_MAX_NEW_TOKENS)
    try:
        request = GenRequest(key="infer", adapter=ADAPTER if adapters else BASE_ADAPTER,
                             prompt=render_prompt(gen.tokenizer, messages))
        # greedy, without the repetition guard: infer decodes up to --max-new-tokens
        settings = GenSettings(max_new_tokens=max_new, repetition_guard=None)
        with progress_bar(gen, on_cpu, f"greedy SQL (up to {max_new} tokens, on the CPU)", max_new):
            [result] = gen.generate([request], settings)
        sql = extract_sql(result.text)
        if cfg.repair == "none":
            return sql, None
        return repair_sql(cfg, gen, request, settings, sql)
    finally:
        gen.close()


@contextlib.contextmanager
def progress_bar(gen, show: bool, desc: str, total: int):
    """A bar on stderr of the tokens generated so far (where ``show``: a CPU, where a long answer takes minutes);
    stdout keeps only the SQL."""
    if not show or not hasattr(gen, "progress"):
        yield
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="tok", leave=False, dynamic_ncols=True)

    def update(n: int) -> None:
        bar.n = min(n, total)
        bar.refresh()

    gen.progress = update
    try:
        yield
    finally:
        gen.progress = None
        bar.close()


def repair_sql(cfg: InferConfig, gen, request, settings, greedy_sql: str) -> tuple[str, str | None]:
    """(SQL, note): the greedy SQL when it executes on --db (note None); else eval's resample repair
    (`evaluate/repair.py`, `evaluate/scoring.py`): --repair-k samples of ``request``'s prompt in one generate
    call at --repair-temperature, executed and voted on; the greedy SQL when none of them executes."""
    import dataclasses

    from t2s_fast.evaluate.repair import repair_requests
    from t2s_fast.evaluate.scoring import execute_samples, majority
    from t2s_fast.generate.base import RepetitionGuard

    def execute(sqls: list[str]) -> list:
        [results] = execute_samples([(Path(cfg.db), [{"sql": s} for s in sqls])], workers=REPAIR_WORKERS,
                                    timeout_s=cfg.timeout)
        return results

    [greedy] = execute([greedy_sql])
    if greedy is not None and greedy.ok:
        return greedy_sql, None
    requests = repair_requests(cfg.repair, request.adapter, request.key, request.prompt, cfg.repair_k)
    print(f"repair: the greedy SQL failed ({greedy.error if greedy else 'empty SQL'}); sampling {cfg.repair_k} "
          f"more at temperature {cfg.repair_temperature} (--repair none skips this)", file=sys.stderr, flush=True)
    on_cpu = str(getattr(gen, "device", "cpu")).startswith("cpu")
    # sampled with eval's repetition guard (on in the measured eval runs): a looping sample ends early
    with progress_bar(gen, on_cpu, f"repair: {cfg.repair_k} samples", settings.max_new_tokens):
        samples = gen.generate(requests, dataclasses.replace(settings, temperature=cfg.repair_temperature,
                                                             repetition_guard=RepetitionGuard()))
    sqls = [extract_sql(r.text) for r in samples]
    index, vote = majority(execute(sqls))
    failed = f"repair: greedy SQL failed ({greedy.error if greedy else 'empty SQL'}); {len(sqls)} samples, " \
             f"{vote['valid']} execute"
    if not vote["valid"]:
        return greedy_sql, f"{failed}, kept the greedy SQL"
    return sqls[index], f"{failed}, chose sample {index + 1} ({vote['votes']} votes)"


def _load(cls, name: str, flag: str, **kwargs):
    """``cls.from_pretrained(name)``; a path or hub id that does not load becomes a one-line error."""
    try:
        return cls.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        raise T2SError(f"{flag} {name}: cannot load it ({first_line(exc)})") from None
