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
