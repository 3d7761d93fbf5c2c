"""The one prompt builder. `prepare`, `train`, `infer` and `eval` all call it, so what the model sees at
evaluation is exactly what it saw in training.

The messages are plain chat messages; rendering to text goes through the tokenizer's own chat template
(Qwen3's, with thinking disabled).
"""

from __future__ import annotations

from typing import Any

DIALECT_NAMES = {"sqlite": "SQLite", "bigquery": "BigQuery", "snowflake": "Snowflake"}

SYSTEM_PROMPT = (
    "You are an expert data analyst who writes SQL. Given a database schema and a question, "
    "reply with a single SQL query in the requested dialect that answers the question. "
    "Reply with the SQL only: no explanation and no code fences."
)


def decode(tokenizer, ids, *, skip_special_tokens: bool = False) -> str:
    """Token ids -> text, exactly as the tokenizer has them: no "clean-up" of spaces. Some tokenizers (the demo's
    GGUF-converted one) are saved with clean_up_tokenization_spaces=True, which transformers ignores for BPE
    with a warning at every decode; SQL must keep its spaces anyway ("a , b" is what the model wrote)."""
    return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)


def dialect_name(dialect: str) -> str:
    from t2s_fast.errors import T2SError

    try:
        return DIALECT_NAMES[dialect.lower()]
    except KeyError:
        raise T2SError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECT_NAMES)}") from None


def build_user_message(
    *, dialect: str, db_id: str, schema: str, question: str, external_knowledge: str | None = None
) -> str:
    parts = [
        f"Dialect: {dialect_name(dialect)}",
        f"Database: {db_id}",
        "",
        "Schema:",
        schema.strip(),
    ]
    if external_knowledge and external_knowledge.strip():
        parts += ["", "External knowledge:", external_knowledge.strip()]
    parts += ["", f"Question: {question.strip()}"]
    return "\n".join(parts)


def build_messages(
    *,
    dialect: str,
    db_id: str,
    schema: str,
    question: str,
    external_knowledge: str | None = None,
    sql: str | None = None,
) -> list[dict[str, str]]:
    """[system, user] for inference and evaluation; [system, user, assistant] when ``sql`` is given.

    ``schema`` is the schema text (see ``t2s_fast.data.schema_text.schema_text``) or a user's free text.
    The assistant message is the SQL and nothing else.
    """
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": build_user_message(
                dialect=dialect, db_id=db_id, schema=schema, question=question, external_knowledge=external_knowledge
            ),
        },
    ]
    if sql is not None:
        messages.append({"role": "assistant", "content": sql.strip()})
    return messages


MAX_REPAIR_SQL_CHARS = 2000  # a runaway failed query is cut to this many characters in a repair prompt
MAX_REPAIR_ERROR_CHARS = 300


def build_repair_messages(
    messages: list[dict[str, str]], *, failed_sql: str | None, error: str, sql: str | None = None
) -> list[dict[str, str]]:
    """The repair turn (eval --repair error-feedback; `t2s-fast prepare-repair` for training): the question's
    own [system, user] messages (from ``build_messages``) with the failed SQL and the database's error message
    appended to the user turn, so it stays one [system, user(, assistant)] exchange like every other example.
    ``sql`` (the gold SQL) adds the assistant answer for training."""
    failed = (failed_sql or "").strip() or "(no SQL)"
    if len(failed) > MAX_REPAIR_SQL_CHARS:
        failed = failed[:MAX_REPAIR_SQL_CHARS] + " ..."
    err = " ".join(error.split())[:MAX_REPAIR_ERROR_CHARS]
    system, user = [m for m in messages if m["role"] != "assistant"][:2]
    repair_user = (f"{user['content'].rstrip()}\n\nA previous answer failed.\nPrevious SQL:\n{failed}\n"
                   f"Error: {err}\n\nReply with a corrected SQL query.")
    out = [dict(system), {"role": "user", "content": repair_user}]
    if sql is not None:
        out.append({"role": "assistant", "content": sql.strip()})
    return out


# Qwen3's template takes `enable_thinking`; other templates ignore unknown keyword arguments.
CHAT_TEMPLATE_KWARGS: dict[str, Any] = {"enable_thinking": False}


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    """The text a model is given at inference: the chat up to the assistant's turn (thinking disabled)."""
    prompt_messages = [m for m in messages if m["role"] != "assistant"]
    return tokenizer.apply_chat_template(
        prompt_messages, tokenize=False, add_generation_prompt=True, **CHAT_TEMPLATE_KWARGS
    )


def render_conversation(tokenizer, messages: list[dict[str, str]]) -> str:
    """The full training text: prompt plus the assistant's SQL and end-of-turn."""
    return tokenizer.apply_chat_template(messages, tokenize=False, **CHAT_TEMPLATE_KWARGS)


def tokenize_for_training(tokenizer, messages: list[dict[str, str]]) -> dict[str, list[int]]:
    """Token ids of the whole conversation and a mask that is 1 exactly on the assistant's answer tokens
    (the SQL and the end-of-turn token that tells the model to stop), 0 on the prompt."""
    return tokenize_many_for_training(tokenizer, [messages])[0]


def tokenize_many_for_training(tokenizer, conversations: list[list[dict[str, str]]]) -> list[dict[str, list[int]]]:
    """`tokenize_for_training` for many conversations, with one batched call of the fast tokenizer.

    The prompt is tokenized on its own, exactly as at inference, and the answer after it. The prompt rendered
    with ``add_generation_prompt`` must be a prefix of the full conversation (true for Qwen3 with thinking
    disabled: both end in ``<think>\\n\\n</think>\\n\\n``); we check that rather than assume it.
    """
    from t2s_fast.errors import T2SError

    prompts, answers = [], []
    for messages in conversations:
        prompt = render_prompt(tokenizer, messages)
        full = render_conversation(tokenizer, messages)
        if not full.startswith(prompt):
            raise T2SError(
                "the chat template renders the prompt differently inside a full conversation; "
                "cannot mask the loss to the answer (use a tokenizer whose template keeps the prompt a prefix)"
            )
        prompts.append(prompt)
        answers.append(full[len(prompt):])
    if not prompts:
        return []
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answers, add_special_tokens=False)["input_ids"]
    out = []
    for p_ids, a_ids in zip(prompt_ids, answer_ids):
        a_ids = list(a_ids)
        # Templates end a turn with "<|im_end|>\\n"; the trailing newline is not something to learn to emit.
        while len(a_ids) > 1 and decode(tokenizer, a_ids[-1:]).strip() == "":
            a_ids.pop()
        out.append({"input_ids": list(p_ids) + a_ids, "completion_mask": [0] * len(p_ids) + [1] * len(a_ids)})
    return out
