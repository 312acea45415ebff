"""Fast checks for Hugging Face Hub access, so that offline runs fail in seconds, not after retries."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE, HF_DATASETS_OFFLINE or TRANSFORMERS_OFFLINE is set."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in names)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint (HF_ENDPOINT, default huggingface.co) opens."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_unavailable_reason() -> str | None:
    """None when the hub can be tried; otherwise a short reason ("offline mode", "unreachable")."""
    if hub_offline():
        return "offline mode (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set)"
    if not hub_reachable():
        return "the Hugging Face Hub is unreachable"
    return None
