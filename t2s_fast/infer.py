"""`t2s-fast infer`: answer one question against a schema with a fine-tuned model; prints only the SQL.

The model is a LoRA adapter folder (its base is the adapter's `base_model_name_or_path` unless
`--base-model` says otherwise) or a merged/standalone model folder. The prompt comes from the shared
builder (`t2s_fast.prompt`), the schema from `--schema-file` (free text) or `--db` (a SQLite file rendered by
the one `t2s_fast.data.schema_text.schema_text`), exactly as in training and evaluation. Decoding is greedy,
through the transformers + PEFT generation engine eval uses (`generate/engines.make_generator`), with its stop
rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError, first_line
from t2s_fast.generate.extract import extract_sql  # the eval extractor, so infer and eval agree

log = logging.getLogger(__name__)

ADAPTER = "adapter"  # the name the adapter of --model-path gets in the engine


@dataclass
class InferConfig:
    model_path: str = _f("", "A LoRA adapter folder (from `t2s-fast train`), or a model: merged folder, hub id, "
                            "packaged alias (qwen2.5-coder-0.5b, ...) or .gguf file.", required=True)
    question: str = _f("", "The question in natural language.", required=True)
    db_id: str = _f("", "Database name shown to the model (default: the --db file's stem).")
    dialect: str = _f("sqlite", "SQL dialect: sqlite, bigquery or snowflake.")
    schema_file: str | None = _f(None, "A text file with the schema (CREATE TABLE statements or free text).")
    db: str | None = _f(None, "A SQLite database file; its schema is rendered by the shared prompt builder.")
    base_model: str | None = _f(None, "Base model for an adapter (default: the adapter's base_model_name_or_path).")
    tokenizer: str | None = _f(None, "Tokenizer (default: the adapter's or model's folder).")
    max_new_tokens: int = _f(512, "Longest SQL to generate, in tokens.")
    sample_values: int = _f(3, "Sample values per column shown with --db (training used the same setting).")
    external_knowledge: str | None = _f(None, "Optional external knowledge text (Spider 2.0 style).")
    question_values: int = _f(0, "Question-matched database values per column shown with --db (0 = off; "
                                 "use what training used).")


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
    """The SQL for cfg.question (also what the CLI prints, alone): one greedy request through the generation
    engine eval uses (transformers + PEFT), so infer decodes and stops as eval does."""
    from t2s_fast.generate.base import BASE_ADAPTER, GenRequest, GenSettings
    from t2s_fast.generate.engines import make_generator
    from t2s_fast.prompt import render_prompt

    if not cfg.model_path:
        raise T2SError("--model-path is required")
    messages = build_infer_messages(cfg)
    base, adapters, tok_src = inference_sources(cfg.model_path, base_model=cfg.base_model, tokenizer=cfg.tokenizer)
    gen = make_generator("hf", base_model=base, adapters=adapters, tokenizer_dir=tok_src, batch_size=1)
    try:
        request = GenRequest(key="infer", adapter=ADAPTER if adapters else BASE_ADAPTER,
                             prompt=render_prompt(gen.tokenizer, messages))
        # greedy, without the repetition guard: infer has always decoded up to --max-new-tokens
        [result] = gen.generate([request], GenSettings(max_new_tokens=cfg.max_new_tokens, repetition_guard=None))
    finally:
        gen.close()
    return extract_sql(result.text)


def _load(cls, name: str, flag: str, **kwargs):
    """``cls.from_pretrained(name)``; a path or hub id that does not load becomes a one-line error."""
    try:
        return cls.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        raise T2SError(f"{flag} {name}: cannot load it ({first_line(exc)})") from None
