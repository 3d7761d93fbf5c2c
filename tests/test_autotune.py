"""The automatic training-setup choice: what it picks on an H200, an H100 and a 24 GiB card, that flags
override it, and that its memory model matches the H200 measurements in
../shared/notes/h200-qlora-first-measurements.md."""

from __future__ import annotations

import json

import pytest

from t2s_fast.train.autotune import (
    ATTENTION_CHOICES,
    CHECKPOINTING_CHOICES,
    GIB,
    DeviceInfo,
    ModelShape,
    TrainSetup,
    choose_setup,
    estimate_peak_bytes,
)

# The exact Qwen3-8B shape (../shared/assets/qwen3-8b-config/config.json), inlined so this runs without ../shared.
QWEN3_8B = {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False}
SHAPE = ModelShape.from_config(QWEN3_8B)
MEAN_TOKENS = 894  # the notes' Spider-train chats: mean 894, max 3,011 tokens
PACKED_8_ROWS = 8 * 3072  # "batch 8 packed" = 8 packed rows of max_seq_length (TRL per_device_train_batch_size)


def _device(name: str, gib: float) -> DeviceInfo:
    return DeviceInfo(name=name, total_bytes=int(gib * GIB), free_bytes=int((gib - 1.5) * GIB), kind="cuda")


H200 = _device("NVIDIA H200", 140)
H100 = _device("NVIDIA H100 80GB HBM3", 79.2)
CARD_24 = _device("NVIDIA GeForce RTX 4090", 23.6)


def test_shape_counts_qwen3_8b_parameters():
    assert SHAPE.n_params == pytest.approx(8.19e9, rel=0.005)  # the notes: 8.19 B params


@pytest.mark.parametrize("backend, ckpt, tokens, packing, load_in_4bit, measured_gib", [
    ("unsloth", "off", PACKED_8_ROWS, True, True, 107.0),
    ("unsloth", "plain", PACKED_8_ROWS, True, True, 16.6),
    ("unsloth", "unsloth", PACKED_8_ROWS, True, True, 10.7),
    ("unsloth", "off", PACKED_8_ROWS, True, False, 117.0),  # bf16 base
    ("hf", "plain", PACKED_8_ROWS, True, True, 33.0),
    ("hf", "plain", 2 * 3011, False, True, 14.1),  # runbook: padded batch 2, longest example 3,011 tokens
])
def test_memory_estimate_within_25_percent_of_h200_measurements(backend, ckpt, tokens, packing, load_in_4bit,
                                                                  measured_gib):
    est = estimate_peak_bytes(SHAPE, tokens, ckpt, load_in_4bit=load_in_4bit, max_seq_length=3072,
                              backend=backend, packing=packing) / GIB
    assert est == pytest.approx(measured_gib, rel=0.25), f"{backend}/{ckpt}: estimated {est:.1f} GiB"


def test_memory_estimate_says_hf_without_checkpointing_does_not_fit_an_h200():
    # measured: out of memory at 139 GiB
    est = estimate_peak_bytes(SHAPE, PACKED_8_ROWS, "off", load_in_4bit=True, max_seq_length=3072, backend="hf",
                              packing=True)
    assert est > 139 * GIB


def _choose(device, backend="unsloth", packing=True, **kw):
    return choose_setup(device=device, shape=SHAPE, max_seq_length=3072, mean_tokens_per_example=MEAN_TOKENS,
                        global_batch_examples=32, backend=backend, packing=packing, max_tokens_per_example=3011, **kw)


def test_h200_packed_picks_no_checkpointing_and_no_cudnn_attention():
    s = _choose(H200)
    assert s.gradient_checkpointing == "off"
    assert s.micro_batch_size == 8  # 8 packed rows, like the notes' 11,779 tok/s run
    assert s.attention == "sdpa-no-cudnn"
    assert s.estimated_peak_bytes <= H200.free_bytes


def test_packed_unsloth_picks_torch_varlen_where_torch_has_it():
    from dataclasses import replace

    s = _choose(replace(H200, torch_varlen=True))
    assert s.attention == "varlen"
    assert (s.gradient_checkpointing, s.micro_batch_size) == ("off", 8)  # memory choice unchanged
    # the hf backend has no varlen path: it keeps SDPA without cuDNN; padded batches keep plain SDPA
    assert _choose(replace(H200, torch_varlen=True), backend="hf").attention == "sdpa-no-cudnn"
    assert _choose(replace(H200, torch_varlen=True), packing=False).attention == "sdpa"


def test_varlen_on_the_hf_backend_is_refused():
    with pytest.raises(ValueError, match="Unsloth"):
        _choose(H200, backend="hf", attention="varlen")


def test_h100_does_not_pick_no_checkpointing_at_8_packed_rows():
    s = _choose(H100)
    assert not (s.gradient_checkpointing == "off" and s.micro_batch_size >= 8)
    assert s.estimated_peak_bytes <= H100.free_bytes * 0.9
    # the global batch is kept about the runbook's tokens per optimizer step
    assert s.micro_batch_size * s.gradient_accumulation_steps in (8, 9, 10)


def test_24gib_card_picks_something_that_fits():
    s = _choose(CARD_24)
    assert s.gradient_checkpointing == "unsloth"  # offloaded: faster and smaller than plain (the notes)
    assert s.estimated_peak_bytes <= CARD_24.free_bytes * 0.9
    hf = _choose(CARD_24, backend="hf")
    assert hf.gradient_checkpointing == "plain"  # transformers has no offloaded checkpointing
    assert hf.estimated_peak_bytes <= CARD_24.free_bytes * 0.9


def test_padded_batches_keep_the_global_batch_and_default_sdpa():
    s = _choose(H200, packing=False)
    assert s.micro_batch_size * s.gradient_accumulation_steps == 32
    assert s.attention == "sdpa"
    assert s.estimated_peak_bytes <= H200.free_bytes


def test_flags_override_the_choice():
    s = _choose(H200, gradient_checkpointing="unsloth", attention="eager", micro_batch_size=2)
    assert (s.gradient_checkpointing, s.attention, s.micro_batch_size) == ("unsloth", "eager", 2)
    assert any("given" in r for r in s.reasons)


def test_nothing_fits_falls_back_to_smallest_and_says_so():
    tiny = _device("tiny", 4)
    s = _choose(tiny)
    assert s.micro_batch_size == 1 and s.gradient_checkpointing == "unsloth"
    assert "nothing estimated to fit" in s.reasons[-1]


def test_cpu_gets_a_small_setup():
    s = _choose(DeviceInfo(name="cpu", total_bytes=0, free_bytes=0, kind="cpu"), backend="hf", packing=False)
    assert s.micro_batch_size == 2 and s.gradient_accumulation_steps == 16 and s.attention == "sdpa"


def test_setup_is_serializable_for_run_json():
    d = _choose(H100).to_dict()
    again = json.loads(json.dumps(d))
    assert again["gradient_checkpointing"] in CHECKPOINTING_CHOICES
    assert again["attention"] in ATTENTION_CHOICES
    assert again["estimated_peak_gib"] > 0 and again["reasons"]
    assert TrainSetup(**{k: v for k, v in again.items() if k != "estimated_peak_gib"}).to_dict() == d


def test_bad_choice_is_refused():
    with pytest.raises(ValueError):
        _choose(H200, gradient_checkpointing="sometimes")
