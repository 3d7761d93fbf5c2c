"""Where the project and the shared data/assets beside it live."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """`../shared` beside the repository root (developers' machines and CI have it)."""
    return REPO_ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    return shared_dir().joinpath(*parts)


SPIDER1_DIR = shared_path("data", "spider1")
SPIDER2_DIR = shared_path("data", "spider2")
QWEN3_TOKENIZER_DIR = shared_path("assets", "qwen3-tokenizer")
QWEN3_8B_CONFIG = shared_path("assets", "qwen3-8b-config", "config.json")
