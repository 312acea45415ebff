"""Fail fast, with a clear message, when a task needs the Hugging Face Hub and it cannot be reached."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

_TRUE = ("1", "true", "yes", "on")


class HubUnavailableError(RuntimeError):
    """A task needs data from the Hugging Face Hub, which is offline or unreachable here."""


def hub_offline_reason(timeout_s: float = 3.0) -> str | None:
    """Why the hub cannot be used (offline flags or no connection), or None when it can."""
    for flag in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(flag, "").strip().lower() in _TRUE:
            return f"{flag}={os.environ[flag]} is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # behind a proxy a direct connection test says nothing; let the download report errors
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        return f"cannot connect to {host}:{port} ({err})"
    return None


def require_hub(what: str, offline_alternative: str) -> None:
    """Raise HubUnavailableError naming ``what`` needed the hub and the offline alternative."""
    reason = hub_offline_reason()
    if reason is not None:
        raise HubUnavailableError(
            f"{what} needs the Hugging Face Hub, which is not available here: {reason}. "
            f"Run it on a machine with hub access, or use the offline alternative: {offline_alternative}."
        )
