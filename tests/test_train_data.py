"""Train-file validation and the loss mask as the real trainer pipeline produces it (real Qwen3 tokenizer)."""

from __future__ import annotations

import json

import pytest

from t2s_fast.errors import T2SError
from t2s_fast.prompt import build_messages


def _line(sql="SELECT count(*) FROM singer", question="How many singers are there?", db_id="concert_singer"):
    schema = 'CREATE TABLE "singer" ("Singer_ID" INTEGER PRIMARY KEY, "Name" TEXT);'
    return {"id": "x", "source": "spider1", "db_id": db_id, "dialect": "sqlite", "question": question, "sql": sql,
            "messages": build_messages(dialect="sqlite", db_id=db_id, schema=schema, question=question, sql=sql)}


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("content, expect", [
    (None, "train file not found"),
    (['{"messages": [}'], ":1: malformed JSON"),
    ([_line(), {"id": 1}], ":2: missing field(s) 'messages'"),
    ([_line(), "", {"messages": [{"role": "user", "content": "q"}]}], ":3: the last message must be the assistant"),
    ([{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "SELECT 1"}]}], "role 'robot'"),
])
def test_bad_train_file_names_file_and_line(tmp_path, qwen3_tokenizer, content, expect):
    from t2s_fast.train.data import load_tokenized

    path = tmp_path / "train.jsonl"
    if content is not None:
        _write(path, content)
    with pytest.raises(T2SError, match=expect.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")) as exc:
        load_tokenized(path, qwen3_tokenizer, 1024)
    assert str(path) in str(exc.value)


def test_too_long_examples_are_dropped_not_truncated(tmp_path, qwen3_tokenizer):
    from t2s_fast.train.data import load_tokenized

    long_sql = "SELECT " + ", ".join(f"col_{i}" for i in range(300)) + " FROM singer"
    data = load_tokenized(_write(tmp_path / "t.jsonl", [_line(), _line(sql=long_sql)]), qwen3_tokenizer, 400)
    assert (data.n_read, data.n_examples, data.n_dropped_too_long) == (2, 1, 1)
    assert max(data.lengths) <= 400
    with pytest.raises(T2SError, match="longer than --max-seq-length"):
        load_tokenized(_write(tmp_path / "t2.jsonl", [_line(sql=long_sql)]), qwen3_tokenizer, 400)


def test_cli_missing_train_file_exits_2(tmp_path, capsys):
    from t2s_fast.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--train-file", str(tmp_path / "nope.jsonl"), "--output-dir", str(tmp_path / "run"),
              "--model-name", str(tmp_path / "no-model"), "--backend", "hf"])
    assert exc.value.code == 2
    assert "nope.jsonl" in capsys.readouterr().err


def _labelled_spans(labels, position_ids=None):
    """Contiguous runs of labelled tokens (label != -100), split at packed-sequence starts."""
    spans, cur = [], []
    for i, lab in enumerate(labels):
        starts_new = position_ids is not None and position_ids[i] == 0
        if lab == -100 or starts_new:
            if cur:
                spans.append(cur)
            cur = []
        if lab != -100:
            cur.append(lab)
    if cur:
        spans.append(cur)
    return spans


@pytest.mark.parametrize("packing", [False, True])
@pytest.mark.slow
def test_loss_mask_covers_exactly_sql_and_im_end_in_trainer_batches(tmp_path, qwen3_tokenizer, tiny_qwen3_dir, packing):
    """The labels the trainer trains on (dataset preparation + collator of the real SFTTrainer) are -100
    everywhere except the assistant's SQL and the <|im_end|> that ends it."""
    from t2s_fast.train.config import TrainConfig
    from t2s_fast.train.trainer import prepare_run

    sqls = ["SELECT count(*) FROM singer", "SELECT name , country , age FROM singer ORDER BY age DESC",
            "SELECT avg(age) , min(age) , max(age) FROM singer WHERE country = 'France'",
            "SELECT T2.name FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id"]
    rows = [_line(sql=s, question=f"question {i}?") for i, s in enumerate(sqls)]
    cfg = TrainConfig(model_name=str(tiny_qwen3_dir), train_file=str(_write(tmp_path / "t.jsonl", rows)),
                      output_dir=str(tmp_path / "run"), max_steps=1, backend="hf", max_seq_length=1024,
                      per_device_train_batch_size=4 if not packing else 1, gradient_accumulation_steps=1,
                      packing=packing, auto_setup=False)
    run = prepare_run(cfg)
    im_end = qwen3_tokenizer.convert_tokens_to_ids("<|im_end|>")
    seen = []
    for batch in run.trainer.get_train_dataloader():
        for r in range(batch["labels"].shape[0]):
            labels = batch["labels"][r].tolist()
            pos = batch["position_ids"][r].tolist() if "position_ids" in batch else None
            if not packing:
                assert "attention_mask" in batch
            ids = batch["input_ids"][r].tolist()
            for span in _labelled_spans(labels, pos):
                assert span[-1] == im_end
                seen.append(qwen3_tokenizer.decode(span[:-1]))
            # every labelled token is the input token at that position (labels are not shifted or altered)
            assert all(lab == tok for lab, tok in zip(labels, ids) if lab != -100)
    assert sorted(seen) == sorted(sqls)
    if packing:
        assert "position_ids" in batch and "attention_mask" not in batch  # padding-free: no compute on padding
