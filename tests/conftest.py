"""Shared fixtures: the real data and assets in ../shared (skipped cleanly if absent) and a tiny Qwen3."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from t2s_fast import paths


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared beside the repo holds it)")
    return path


@pytest.fixture(scope="session")
def spider1_dir() -> Path:
    return _need(paths.SPIDER1_DIR)


@pytest.fixture(scope="session")
def spider2_dir() -> Path:
    return _need(paths.SPIDER2_DIR)


@pytest.fixture(scope="session")
def qwen3_tokenizer_dir() -> Path:
    return _need(paths.QWEN3_TOKENIZER_DIR)


@pytest.fixture(scope="session")
def qwen3_tokenizer(qwen3_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir))


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory, qwen3_tokenizer_dir) -> Path:
    """A scaled-down Qwen3 (real architecture, real tokenizer and vocabulary, random weights) saved as an
    ordinary model folder, so every code path loads it exactly as it would load Qwen/Qwen3-8B."""
    from t2s_fast.models import materialize_random_init, scaled_down_config

    config_path = _need(paths.QWEN3_8B_CONFIG)
    root = tmp_path_factory.mktemp("tiny-qwen3")
    cfg_file = root / "config.json"
    cfg_file.write_text(json.dumps(scaled_down_config(config_path)))
    return materialize_random_init(cfg_file, root / "model", tokenizer=qwen3_tokenizer_dir, dtype="float32")


@pytest.fixture
def fake_vllm(monkeypatch):
    """The fake `vllm` package in tests/fake_vllm (records engines and generate calls) in place of the real one."""
    fake_dir = Path(__file__).parent / "fake_vllm"
    monkeypatch.syspath_prepend(str(fake_dir))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import vllm

    vllm.reset()
    yield vllm
    vllm.reset()
    # The fake's modules go with it: left in sys.modules, a later import (TRL's vLLM check) would find a `vllm`
    # that is no package on sys.path any more (monkeypatch restores only the entries it replaced).
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]
