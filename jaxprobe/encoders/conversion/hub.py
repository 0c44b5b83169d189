"""Hugging Face hub ids where a checkpoint folder is accepted: ``org/name`` or ``org/name@revision`` resolved with
``huggingface_hub`` into its standard cache (downloaded once when allowed; ``HF_HUB_OFFLINE=1`` reads only the
cache). The snapshot folder's name is the commit, recorded as ``org/name@commit``."""
from __future__ import annotations

import re
from pathlib import Path

from jaxprobe.errors import ConversionError

HUB_ID = re.compile(r"([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([\w./-]+))?")


def is_hub_id(text: str) -> bool:
    return HUB_ID.fullmatch(text) is not None


def resolve(text: str, what: str, log=None) -> tuple[Path, str | None]:
    """(folder, ``repo@commit`` or None for a local folder) of a checkpoint given as a folder or a hub id; ``what``
    names the setting in errors (``encoders.rad_dino.checkpoint``, ``--src``)."""
    src = Path(text).expanduser()
    if src.is_dir():
        return src, None
    match = HUB_ID.fullmatch(text)
    if src.exists() or not match:
        raise ConversionError(f"{what}: {text} is neither a folder nor a Hugging Face hub id (org/name[@revision])")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise ConversionError(f"{what}: {text} looks like a hub id; resolving it needs huggingface_hub "
                              "(pip install 'jaxprobe[convert]')") from None
    repo, revision = match.group(1), match.group(2)
    if log:
        log(f"resolving {text} through the Hugging Face hub cache")
    try:
        folder = Path(snapshot_download(repo, revision=revision))
    except LocalEntryNotFoundError as e:
        raise ConversionError(f"{what}: {text} is not in the Hugging Face cache and cannot be downloaded now ({e}); "
                              f"fetch it once online (`huggingface-cli download {repo}`"
                              f"{f' --revision {revision}' if revision else ''}, or leave HF_HUB_OFFLINE unset), "
                              "or give a folder") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise ConversionError(f"{what}: cannot resolve hub id {text}: {type(e).__name__}: {e}") from None
    return folder, f"{repo}@{folder.name}"
