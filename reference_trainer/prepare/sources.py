"""Where a model named on the command line comes from, resolved before anything is written.

A name is a local directory or a Hugging Face Hub id. ``from_pretrained`` on an id that is neither
cached nor reachable retries the Hub for about a minute before failing; ``check_pretrained`` says
at once what is wrong (no such directory, offline and not cached) so a typo costs nothing.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

HUB_TIMEOUT_SECONDS = 3.0


def looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def hub_reachable() -> bool:
    """Whether the Hub's host answers a TCP connection (a DNS failure answers at once)."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), HUB_TIMEOUT_SECONDS).close()
    except OSError:
        return False
    return True


def check_pretrained(name: str, what: str) -> None:
    """``ValueError`` naming ``what`` (e.g. "reward model") unless ``name`` is a local directory,
    a Hub id in the local cache, or a Hub id with the Hub reachable."""
    if looks_local(name):
        if not Path(name).expanduser().is_dir():
            raise ValueError(f"{what} {name!r}: no such directory")
        return
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        snapshot_download(name, local_files_only=True)
        return
    except HFValidationError as exc:
        raise ValueError(
            f"{what} {name!r} is neither a local directory nor a Hub id: {exc}"
        ) from None
    except (LocalEntryNotFoundError, OSError):
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline or not hub_reachable():
        reason = "HF_HUB_OFFLINE is set" if offline else "this machine cannot reach the Hub"
        raise ValueError(
            f"{what} {name!r} is not a local directory and not in the Hugging Face cache, and "
            f"{reason} (offline); pass a local directory"
        )
