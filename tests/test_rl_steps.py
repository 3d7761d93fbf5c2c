"""How stage 3 forms its steps: with --length-grouped-steps a step's prompts are alike in length (TRL pads every
prompt of a step to the step's longest), taken in a seeded random order; off, TRL's own random order."""

from __future__ import annotations

import random

import pytest

from t2s_fast.rl.config import RLConfig
from t2s_fast.rl.trainer import length_grouped_order, prompt_padding_share


def test_grouped_steps_hold_prompts_of_one_group_sorted_by_length_and_waste_less_on_padding():
    rng = random.Random(1)
    lengths = [rng.choice([300, 600, 900, 2400]) + rng.randrange(100) for _ in range(1000)]  # Spider-like spread
    order = length_grouped_order(lengths, per_step=16, steps_per_group=8, seed=3407)
    assert sorted(order) == list(range(1000))  # every prompt once
    steps = [order[i:i + 16] for i in range(0, 992, 16)]
    assert all(lengths[a] <= lengths[b] for s in steps for a, b in zip(s, s[1:]))  # sorted within a step
    # the steps come in a shuffled order, not group after group from short to long
    assert [max(lengths[i] for i in s) for s in steps] != sorted(max(lengths[i] for i in s) for s in steps)
    shuffled = list(range(1000))
    random.Random(0).shuffle(shuffled)
    assert prompt_padding_share([1, 3, 5], [0, 1, 2], 2) == round(1 - 4 / 6, 4)  # one whole step: 4 of 6 real
    assert prompt_padding_share(lengths, order, 16) < 0.1 < 0.3 < prompt_padding_share(lengths, shuffled, 16)
    assert order == length_grouped_order(lengths, 16, 8, 3407)  # the seed fixes it (resume sees the same steps)
    assert order != length_grouped_order(lengths, 16, 8, 1)


def test_a_last_partial_step_stays_last_so_no_whole_step_is_shifted():
    """TRL drops a last chunk smaller than a step; placed anywhere else it would shift every step after it."""
    lengths = list(range(37))  # 2 whole steps of 16 and 5 prompts over, all lengths distinct
    for seed in range(20):
        order = length_grouped_order(lengths, per_step=16, steps_per_group=2, seed=seed)
        assert sorted(order) == list(range(37))
        runs = [order[:16], order[16:32], order[32:]]  # a step misplaced would break one run's sorting
        assert all(r == sorted(r) for r in runs) and len(runs[2]) == 5


def test_trl_keeps_the_dataset_order_only_when_steps_are_grouped(tmp_path):
    from t2s_fast.rl.engines import grpo_args

    cfg = RLConfig(train_file="t", adapter_path="a", db_root="d", output_dir=str(tmp_path))
    assert grpo_args(cfg, "trl", str(tmp_path / "c")).shuffle_dataset is True
    cfg.length_grouped_steps = 8
    assert grpo_args(cfg, "trl", str(tmp_path / "c")).shuffle_dataset is False


def test_the_dataset_is_in_the_steps_order(qwen3_tokenizer, tmp_path):
    from t2s_fast.rl.trainer import _dataset

    kept = [{"id": str(i), "db_id": "d", "gold": "SELECT 1",
             "messages": [{"role": "user", "content": "word " * n}]} for i, n in enumerate([50, 5, 400, 60, 8, 300])]
    cfg = RLConfig(train_file="t", adapter_path="a", db_root="d", output_dir=str(tmp_path), prompts_per_step=2,
                   length_grouped_steps=3)
    ids = _dataset(kept, qwen3_tokenizer, cfg)["id"]
    assert sorted(ids) == [str(i) for i in range(6)]
    pairs = [set(ids[i:i + 2]) for i in (0, 2, 4)]  # one group of 3 steps: the two shortest, middle, longest
    assert sorted(map(sorted, pairs)) == sorted(map(sorted, [{"1", "4"}, {"0", "3"}, {"2", "5"}]))
    cfg.length_grouped_steps = 0
    assert _dataset(kept, qwen3_tokenizer, cfg)["id"] == [str(i) for i in range(6)]  # TRL shuffles it


@pytest.mark.parametrize("bad", [-1])
def test_a_negative_group_is_refused(bad):
    from t2s_fast.errors import T2SError

    with pytest.raises(T2SError, match="--length-grouped-steps"):
        RLConfig(train_file="t", adapter_path="a", db_root="d", output_dir="o", length_grouped_steps=bad).validate()


# ------------------------------------------------------------------ micro-batches cut from sorted rollouts
def _rollouts(tokenizer, prompt_lens, completion_lens, seed=0):
    """A step's rollouts as TRL's `_generate_and_score_completions` returns them: prompts left-padded and
    completions right-padded to the step's longest, a group of 2 completions per prompt."""
    import torch

    g = torch.Generator().manual_seed(seed)
    pad, b = tokenizer.pad_token_id or 0, len(prompt_lens)
    p_w, c_w = max(prompt_lens), max(completion_lens)
    prompt_ids = torch.full((b, p_w), pad)
    prompt_mask = torch.zeros(b, p_w, dtype=torch.long)
    completion_ids = torch.full((b, c_w), pad)
    completion_mask = torch.zeros(b, c_w, dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompt_lens, completion_lens)):
        prompt_ids[i, p_w - p:] = torch.randint(10, 5000, (p,), generator=g)
        prompt_mask[i, p_w - p:] = 1
        completion_ids[i, :c] = torch.randint(10, 5000, (c,), generator=g)
        completion_mask[i, :c] = 1
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
            "completion_mask": completion_mask, "advantages": torch.randn(b, generator=g),
            "num_items_in_batch": completion_mask.sum()}


def _one_step(cls, model, cfg, rollouts, tmp_path):
    """One optimizer step's gradients (summed over its micro-batches, as the Trainer accumulates them) through
    trainer class ``cls`` fed ``rollouts``, and the token positions its micro-batches held."""
    from datasets import Dataset

    from t2s_fast.rl.engines import grpo_args

    trainer = cls(model=model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
                  args=grpo_args(cfg, "trl", str(tmp_path / cls.__name__)),
                  train_dataset=Dataset.from_list([{"prompt": "SELECT"}] * 8))
    trainer._generate_and_score_completions = lambda batch: dict(rollouts)
    trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps
    model.train()
    model.zero_grad()
    positions = 0
    for _ in range(trainer.args.gradient_accumulation_steps):
        inputs = trainer._prepare_inputs(None)
        positions += inputs["prompt_mask"].numel() + inputs["completion_mask"].numel()
        trainer.compute_loss(model, inputs).backward()
        trainer._step += 1
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}, positions


def _tiny_step(tiny_qwen3_dir, tmp_path, loss_type):
    """The scaled-down Qwen3, a 4-prompt x 2-completion step's settings (micro-batches of 2) and its rollouts:
    prompts of 40, 7, 23 and 12 tokens, completions of 1 to 16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3_dir, dtype=torch.float32)
    cfg = RLConfig(train_file="t", adapter_path="a", db_root="d", output_dir=str(tmp_path), num_generations=2,
                   prompts_per_step=4, micro_batch_completions=2, max_completion_length=16, loss_type=loss_type)
    prompt_lens = [p for p in (40, 7, 23, 12) for _ in range(2)]  # a group's completions share its prompt
    return model, cfg, _rollouts(tokenizer, prompt_lens, [16, 3, 5, 9, 1, 14, 6, 6])


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_sorted_trimmed_micro_batches_give_trls_update_on_fewer_positions(tiny_qwen3_dir, tmp_path, loss_type):
    """The step's update is the sum of its micro-batches' losses, so cutting them from length-sorted rollouts and
    trimming each to its own longest must leave the gradients as TRL's random, step-wide-padded cut gives them
    (dapo divides by the step's token count, grpo averages equal-sized micro-batches' sequence means)."""
    import torch
    from trl import GRPOTrainer

    from t2s_fast.rl.engines import PlainLogprobs, SortedMicroBatches

    model, cfg, rollouts = _tiny_step(tiny_qwen3_dir, tmp_path, loss_type)
    trl_cut = type("TRLCut", (PlainLogprobs, GRPOTrainer), {})
    sorted_cut = type("SortedCut", (SortedMicroBatches, PlainLogprobs, GRPOTrainer), {})
    want, trl_positions = _one_step(trl_cut, model, cfg, rollouts, tmp_path)
    got, sorted_positions = _one_step(sorted_cut, model, cfg, rollouts, tmp_path)
    assert want.keys() == got.keys() and want
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)
    assert sorted_positions < 0.6 * trl_positions  # (40 + 16) x 8 padded positions against far fewer
    # the gradients are not all zero (a comparison of zeros would prove nothing)
    assert any(g.abs().max() > 0 for g in want.values())


def test_a_trimmed_micro_batch_keeps_every_real_token_and_its_per_token_values():
    import torch

    from t2s_fast.rl.engines import length_sorted, trimmed

    prompt_mask = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    completion_mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    batch = {"prompt_ids": prompt_mask * 7, "prompt_mask": prompt_mask, "completion_ids": completion_mask * 9,
             "completion_mask": completion_mask, "advantages": torch.tensor([0.5, -1.0, 2.0]),
             "old_per_token_logps": torch.arange(12.0).view(3, 4),
             "importance_sampling_ratio": torch.ones(3, 4), "num_items_in_batch": completion_mask.sum()}
    rows = length_sorted(batch)
    assert rows["advantages"].tolist() == [0.5, -1.0, 2.0]  # prompt lengths 2, 3, 5: already in order
    swapped = length_sorted({k: (v[[2, 0, 1]] if v.ndim else v) for k, v in batch.items()})
    assert swapped["advantages"].tolist() == [0.5, -1.0, 2.0]  # rows move together, back to length order
    assert torch.equal(swapped["old_per_token_logps"], batch["old_per_token_logps"])
    first_two = trimmed({k: (v[:2] if v.ndim else v) for k, v in batch.items()})
    assert first_two["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]  # the two all-padding columns go
    assert first_two["completion_mask"].tolist() == [[1, 1], [1, 0]]  # past the longest completion go
    assert first_two["old_per_token_logps"].tolist() == [[0.0, 1.0], [4.0, 5.0]]
    assert first_two["importance_sampling_ratio"].shape == (2, 2)
    assert first_two["num_items_in_batch"] == batch["num_items_in_batch"]  # the step's count, untouched
    assert trimmed(batch)["prompt_mask"].shape == (3, 5)  # nothing to cut: every column holds a token


def test_a_loss_normalized_per_micro_batch_keeps_trls_cut(tiny_qwen3_dir, tmp_path):
    """bnpo divides each micro-batch's loss by its own token count, so the cut changes the update: TRL's stays."""
    from trl import GRPOTrainer

    from t2s_fast.rl.engines import PlainLogprobs, SortedMicroBatches

    model, cfg, rollouts = _tiny_step(tiny_qwen3_dir, tmp_path, "bnpo")
    sorted_cut = type("SortedCut", (SortedMicroBatches, PlainLogprobs, GRPOTrainer), {})
    _, positions = _one_step(sorted_cut, model, cfg, rollouts, tmp_path)
    assert positions == (40 + 16) * 8  # every micro-batch at the step's width: TRL's own cut


@pytest.mark.parametrize("loss_type,skips", [("dapo", True), ("grpo", False)])
def test_rollouts_without_an_advantage_leave_the_step_only_where_the_update_stays(tiny_qwen3_dir, tmp_path,
                                                                                  loss_type, skips):
    """A group whose completions all got one reward has advantage 0 (or 1e-13 when the rewards were 0.1: float
    rounding), so under dapo its tokens' loss is zero and leaving it out of the step changes nothing; under grpo
    each micro-batch is averaged over its own rows, so the rows must stay."""
    import torch
    from trl import GRPOTrainer

    from t2s_fast.rl.engines import PlainLogprobs, SortedMicroBatches

    model, cfg, rollouts = _tiny_step(tiny_qwen3_dir, tmp_path, loss_type)
    rollouts["advantages"][0:2] = 0.0  # the longest prompt's group: all right or all wrong
    rollouts["advantages"][4:6] = 1.4e-13  # a group all at 0.1: (0.1 - mean) / (std + 1e-4) is not quite 0
    trl_cut = type("TRLCut", (PlainLogprobs, GRPOTrainer), {})
    sorted_cut = type("SortedCut", (SortedMicroBatches, PlainLogprobs, GRPOTrainer), {})
    skipping = type("Skipping", (SortedMicroBatches, PlainLogprobs, GRPOTrainer), {"skip_no_advantage": True})
    want, _ = _one_step(trl_cut, model, cfg, rollouts, tmp_path)
    _, sorted_positions = _one_step(sorted_cut, model, cfg, rollouts, tmp_path)
    got, positions = _one_step(skipping, model, cfg, rollouts, tmp_path)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().max() > 0 for g in want.values())
    assert (positions < sorted_positions) == skips and (positions <= sorted_positions)


def test_without_an_advantage_rows_go_but_every_micro_batch_keeps_one():
    import torch

    from t2s_fast.rl.engines import split_rows, with_advantage

    batch = {"advantages": torch.tensor([0.0, 0.7, 1e-13, -0.4, 0.0, 0.0]), "ids": list("abcdef"),
             "num_items_in_batch": torch.tensor(60)}
    kept = with_advantage(batch, at_least=2)
    assert kept["ids"] == ["b", "d"] and kept["num_items_in_batch"] == 60  # the step's token count stays
    assert with_advantage(batch, at_least=4)["ids"] == ["a", "b", "c", "d"]  # filled with rows without, in order
    chunks = split_rows(with_advantage(batch, at_least=3), 2)
    assert [c["ids"] for c in chunks] == [["a"], ["b", "d"]]  # sizes differ by at most one, order kept
