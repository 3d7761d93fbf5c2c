"""Loading a tokenizer named by a Hugging Face hub id without stalling when the hub cannot be reached.

Offline, transformers/huggingface_hub retry a hub id for about 50 s before failing. Here a hub id is first
checked: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set, or no TCP connection to the hub within a few seconds,
means "offline", and then only the local cache is read (local_files_only=True: no network at all). A tokenizer
that is not in the cache fails at once, with exit code 2 and a message that says to pass a local folder.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from t2s_fast.errors import T2SError

PROBE_TIMEOUT_S = 3.0
LOCAL_TOKENIZER_HINT = "../shared/assets/qwen3-tokenizer"


def offline_by_env() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """One TCP connection to the hub endpoint (HF_ENDPOINT, default huggingface.co), no retries."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def hub_state() -> str | None:
    """None when the hub can be used; else why not, in words."""
    if offline_by_env():
        return "HF_HUB_OFFLINE is set"
    if not hub_reachable():
        return f"the Hugging Face hub cannot be reached (no connection within {PROBE_TIMEOUT_S:.0f} s)"
    return None


def load_tokenizer(name: str, flag: str = "--tokenizer"):
    """AutoTokenizer from a local folder, or from a hub id (the cache only when the hub cannot be used)."""
    from transformers import AutoTokenizer

    name = str(name)
    local = Path(name).exists()
    why_offline = None if local else hub_state()
    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=why_offline is not None)
    except (OSError, ValueError) as exc:
        if why_offline:
            raise T2SError(f"{flag} {name}: {why_offline} and this tokenizer is not in the local Hugging Face "
                           f"cache. Pass {flag} DIR, a local tokenizer folder (e.g. {flag} {LOCAL_TOKENIZER_HINT})."
                           ) from None
        raise T2SError(f"{flag} {name}: cannot load a tokenizer from it ({exc.__class__.__name__}: {exc}). "
                       f"Pass {flag} DIR, a local tokenizer folder, or a hub id.") from None
