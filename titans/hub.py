"""Whether the Hugging Face Hub can be used here, decided in seconds (an offline run fails at once instead of after
minutes of download retries).

Every part of the project that needs the hub (FineWeb-Edu, the BABILong data sets, the Llama-2 tokenizer, the lm-eval
tasks) asks ``require_hub`` first; it raises :class:`~titans.errors.HubUnavailableError` with one line naming what
needed the hub, why it cannot be used, and the offline alternative.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from titans.errors import HubUnavailableError

OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_TRUE = ("1", "true", "yes", "on")


def hub_unavailable_reason(timeout_s: float = 3.0) -> str | None:
    """Why the hub cannot be used here, or None when it can be tried.

    An offline flag (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE, TRANSFORMERS_OFFLINE) wins; behind a proxy a direct
    connection test says nothing, so the download is left to report its own errors; otherwise a TCP connection to
    the endpoint (HF_ENDPOINT, default huggingface.co) must open within ``timeout_s``.
    """
    for flag in OFFLINE_FLAGS:
        if os.environ.get(flag, "").strip().lower() in _TRUE:
            return f"{flag}={os.environ[flag]} is set (offline mode)"
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        return f"the Hugging Face Hub is unreachable (cannot connect to {host}:{port}: {err})"
    return None


def require_hub(what: str, offline_alternative: str) -> None:
    """Raise HubUnavailableError when the hub cannot be used: ``what`` needed it, ``offline_alternative`` is what to
    do instead."""
    reason = hub_unavailable_reason()
    if reason is not None:
        raise HubUnavailableError(
            f"{what} needs the Hugging Face Hub, which is not available here: {reason}. Run it where the hub is "
            f"reachable, or use the offline alternative: {offline_alternative}"
        )
