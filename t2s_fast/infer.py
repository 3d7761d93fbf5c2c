"""`t2s-fast infer`: answer one question against a schema with a fine-tuned model; prints only the SQL.

The model is a LoRA adapter folder (its base is the adapter's `base_model_name_or_path` unless
`--base-model` says otherwise) or a merged/standalone model folder. The prompt comes from the shared
builder (`t2s_fast.prompt`), the schema from `--schema-file` (free text) or `--db` (a SQLite file rendered by
`t2s_fast.schema`), exactly as in training and evaluation. Decoding is greedy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from t2s_fast.configs import setting as _f
from t2s_fast.errors import T2SError
from t2s_fast.generate.extract import extract_sql  # the eval extractor, so infer and eval agree

log = logging.getLogger(__name__)




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
        from t2s_fast.schema import read_sqlite_schema, render_schema

        db = Path(cfg.db)
        if not db.is_file():
            raise T2SError(f"{db}: SQLite database not found")
        db_id = cfg.db_id or db.stem
        from t2s_fast.schema_values import make_matcher

        schema = read_sqlite_schema(db, db_id=db_id, sample_values=cfg.sample_values)
        matcher = make_matcher(cfg.question_values)
        schema_text = render_schema(schema, sample_values=cfg.sample_values > 0,
                                    question_values=matcher.match(db, cfg.question) if matcher else None)
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


def load_for_inference(model_path: str, *, base_model: str | None = None, tokenizer: str | None = None):
    """(model, tokenizer) in eval mode: base + adapter when model_path is an adapter folder, else the model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from t2s_fast.models import is_config_file, resolve_model
    from t2s_fast.adapters import is_adapter_dir, load_adapter_checked, read_adapter_config

    on_gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if on_gpu else torch.float32
    kwargs = {"dtype": dtype, **({"device_map": {"": 0}} if on_gpu else {})}
    model_path = resolve_model(model_path).path  # a packaged alias or .gguf: its cached folder; others as given
    base_model = resolve_model(base_model).path if base_model else None
    mp = Path(model_path)
    if not mp.exists() and (model_path.startswith((".", "/")) or model_path.endswith(".json")):
        raise T2SError(f"--model-path {model_path}: not found")
    if is_adapter_dir(mp):
        acfg = read_adapter_config(mp)
        base = base_model or acfg.get("base_model_name_or_path")
        if not base:
            raise T2SError(f"{mp}: the adapter names no base model; pass --base-model")
        if is_config_file(base):
            raise T2SError(f"--base-model {base} is a config file; pass the model folder the adapter was trained on")
        tok_src = tokenizer or (str(mp) if (mp / "tokenizer_config.json").is_file() else base)
        model = _load(AutoModelForCausalLM, base, "--base-model", **kwargs)
        model = load_adapter_checked(model, mp, is_trainable=False, base_name=base)
    else:
        tok_src = tokenizer or model_path
        model = _load(AutoModelForCausalLM, model_path, "--model-path", **kwargs)
    tok = _load(AutoTokenizer, tok_src, "--tokenizer")
    model.eval()
    return model, tok


def generate_sql(model, tokenizer, messages: list[dict], max_new_tokens: int = 512) -> str:
    import torch

    from t2s_fast.prompt import decode, render_prompt

    prompt = render_prompt(tokenizer, messages)
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    eos = [t for t in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")} if isinstance(t, int) and t >= 0]
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos or None,
                             pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0])
    text = decode(tokenizer, out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return extract_sql(text)


def infer(cfg: InferConfig) -> str:
    """The SQL for cfg.question (also what the CLI prints, alone)."""
    if not cfg.model_path:
        raise T2SError("--model-path is required")
    messages = build_infer_messages(cfg)
    model, tok = load_for_inference(cfg.model_path, base_model=cfg.base_model, tokenizer=cfg.tokenizer)
    return generate_sql(model, tok, messages, cfg.max_new_tokens)


def _load(cls, name: str, flag: str, **kwargs):
    """``cls.from_pretrained(name)``; a path or hub id that does not load becomes a one-line error."""
    try:
        return cls.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise T2SError(f"{flag} {name}: cannot load it ({first})") from None
