"""Prepared chat JSONL -> tokenized `datasets.Dataset` for training.

Every example goes through `t2s_fast.prompt.tokenize_for_training`, the same prompt builder and chat
template that inference and evaluation use, so training sees exactly what evaluation sees. The dataset has
`input_ids` and `completion_mask` (1 exactly on the SQL and `<|im_end|>`); TRL's SFTTrainer (and Unsloth's
patched copy of it) turns them into `labels` with -100 on the prompt when `completion_only_loss=True`.

Examples longer than `max_seq_length` are dropped and counted, never truncated: a truncated example would
teach the model a cut-off SQL query (or, with a cut prompt, a query for a schema it never saw).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from t2s_fast.errors import T2SError
from t2s_fast.jsonl import iter_numbered_jsonl

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")


@dataclass
class TokenizedData:
    dataset: object  # datasets.Dataset with input_ids, completion_mask
    path: str
    n_read: int
    n_dropped_too_long: int
    lengths: list[int] = field(default_factory=list)
    completion_tokens: int = 0

    @property
    def n_examples(self) -> int:
        return len(self.lengths)

    @property
    def total_tokens(self) -> int:
        return sum(self.lengths)

    @property
    def mean_tokens(self) -> float:
        return self.total_tokens / max(1, self.n_examples)

    def summary(self) -> dict:
        return {"path": self.path, "examples": self.n_examples, "read": self.n_read,
                "dropped_too_long": self.n_dropped_too_long, "tokens": self.total_tokens,
                "completion_tokens": self.completion_tokens, "mean_tokens": round(self.mean_tokens, 1),
                "max_tokens": max(self.lengths, default=0)}


def validate_messages(record: dict, where: str) -> list[dict]:
    """The messages of one prepared line, checked: system/user turns then one final assistant turn (the SQL)."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise T2SError(f"{where}: field 'messages' must be a non-empty list of {{role, content}} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise T2SError(f"{where}: messages[{i}] must be an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise T2SError(f"{where}: messages[{i}].role {m['role']!r} is not one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise T2SError(f"{where}: messages[{i}].content must be a string")
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise T2SError(f"{where}: the last message must be the assistant's SQL (non-empty); "
                       "was the file written by `t2s-fast prepare`?")
    if not any(m["role"] == "user" for m in messages):
        raise T2SError(f"{where}: no user message")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def load_tokenized(path: str | Path, tokenizer, max_seq_length: int, *, what: str = "train") -> TokenizedData:
    """Read, validate and tokenize a prepared JSONL file. Errors name the file and line (T2SError, exit 2)."""
    from datasets import Dataset

    from t2s_fast.prompt import tokenize_many_for_training

    path = Path(path)
    if not path.is_file():
        raise T2SError(f"{path}: {what} file not found (write it with `t2s-fast prepare`)")
    ids, masks, lengths = [], [], []
    n_read = dropped = completion = 0
    conversations = [validate_messages(record, f"{path}:{lineno}")
                     for lineno, record in iter_numbered_jsonl(path, required=("messages",))]
    # One batched call of the fast (Rust, multi-threaded) tokenizer, not one call per example.
    for tok in tokenize_many_for_training(tokenizer, conversations):
        n_read += 1
        n = len(tok["input_ids"])
        if n > max_seq_length:
            dropped += 1
            continue
        ids.append(tok["input_ids"])
        masks.append(tok["completion_mask"])
        lengths.append(n)
        completion += sum(tok["completion_mask"])
    if n_read == 0:
        raise T2SError(f"{path}: no examples in the {what} file")
    if not lengths:
        raise T2SError(f"{path}: all {n_read} examples are longer than --max-seq-length {max_seq_length}; raise it")
    if dropped:
        log.warning("%s: dropped %d of %d examples longer than --max-seq-length %d tokens (not truncated)",
                    path, dropped, n_read, max_seq_length)
    dataset = Dataset.from_dict({"input_ids": ids, "completion_mask": masks})
    return TokenizedData(dataset=dataset, path=str(path), n_read=n_read, n_dropped_too_long=dropped,
                         lengths=lengths, completion_tokens=completion)
