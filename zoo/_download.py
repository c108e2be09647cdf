"""Download one weights file from the Hugging Face hub (or a mirror) and verify it.

``huggingface_hub`` fetches the file into its standard cache (a progress bar on a terminal);
then the blob is checked against the digest the hub announced for it (the sha256 of an LFS
file, the git blob sha1 of a small one). A blob that does not match is removed with its
snapshot link, so it never stays in the cache looking valid.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import warnings
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path
from typing import Any

from zoo._online import HubSettings
from zoo._provenance import file_sha256
from zoo.errors import WeightsDownloadError

__all__ = ["hf_download", "offline_hint", "url_download"]

_TEMPLATE = "/{repo_id}/resolve/{revision}/{filename}"  # huggingface_hub's, after the endpoint
_CUT_SHORT = re.compile(r"should be of size (?P<size>\d+) but has size (?P<got>\d+)")
_SHA256, _SHA1 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{40}")


def hf_download(name: str, repo_id: str, filenames: Sequence[str], revision: str | None,
                settings: HubSettings, cache_dir: str | None = None) -> Path:
    """The cached path of the first of ``filenames`` that the repository has, downloaded and
    verified now if it is not in the cache yet."""
    from huggingface_hub import hf_hub_download, hf_hub_url
    from huggingface_hub.errors import RemoteEntryNotFoundError

    _use_endpoint(settings.hf_endpoint)
    for filename in filenames:
        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=settings.hf_endpoint)
        try:
            path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                   endpoint=settings.hf_endpoint, tqdm_class=_bar_class())
        except RemoteEntryNotFoundError:
            continue  # the next name timm reads (the .bin after the .safetensors)
        except Exception as exc:
            raise _failure(name, url, exc) from exc
        verify(name, url, Path(path))
        return Path(path)
    url = hf_hub_url(repo_id, filenames[0], revision=revision, endpoint=settings.hf_endpoint)
    raise WeightsDownloadError(name, url, f"the repository has none of {', '.join(filenames)}",
                               hint=offline_hint(name))


def url_download(name: str, url: str, folder: Path) -> Path:
    """Download a file published by URL into ``folder`` (torch hub's checkpoints, where timm
    looks), checked against the hash prefix in its name where it has one (``-14fe96d1.pth``),
    as ``torch.hub`` checks it. The file appears only once complete and checked."""
    from torch.hub import HASH_REGEX, download_url_to_file

    target = folder / os.path.basename(url.split("?", 1)[0])
    match = HASH_REGEX.search(target.name)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        download_url_to_file(url, str(target), hash_prefix=match.group(1) if match else None,
                             progress=sys.stderr.isatty())
    except RuntimeError as exc:  # torch.hub's "invalid hash value"
        raise WeightsDownloadError(name, url, str(exc), hint=offline_hint(name)) from exc
    except (OSError, HTTPException) as exc:
        raise WeightsDownloadError(name, url, " ".join(str(exc).split())[:300],
                                   hint=offline_hint(name)) from exc
    return target


def verify(name: str, url: str, path: Path) -> None:
    """Check the blob behind ``path`` against the digest that names it; remove it if wrong."""
    blob = Path(os.path.realpath(path))
    announced = blob.name
    if _SHA256.fullmatch(announced):
        actual = file_sha256(blob)
    elif _SHA1.fullmatch(announced):
        actual = _git_blob_sha1(blob)
    else:
        warnings.warn(f"{url}: the server announced no digest (ETag {announced!r}), so the "
                      "download could not be verified", stacklevel=3)
        return
    if actual != announced:
        _discard(path, blob)
        raise WeightsDownloadError(name, url, "the file that arrived does not match the "
                                   "digest the server announced; it was removed from the cache",
                                   expected=announced, actual=actual,
                                   hint="try again; if it happens again, a proxy or the mirror "
                                        "alters the file")


def offline_hint(name: str) -> str:
    """How to get the weights of ``name`` onto a machine that cannot download them."""
    return (f"to work without the hub, run `cairn zoo pull {name}` on a machine with network "
            "and copy its weights folder here (CAIRN_WEIGHTS_DIR or [zoo] weights_dir), or "
            "point HF_ENDPOINT ([zoo] hf_endpoint) at a mirror this machine can reach")


def _failure(name: str, url: str, exc: Exception) -> WeightsDownloadError:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        reason = "the repository is gated: accept its terms on the hub and set HF_TOKEN"
    elif isinstance(exc, RepositoryNotFoundError):
        reason = "no such repository (or it is private: set HF_TOKEN)"
    elif isinstance(exc, RevisionNotFoundError):
        reason = "no such revision"
    elif isinstance(exc, OfflineModeIsEnabled):
        reason = "huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when it loaded)"
    elif isinstance(exc, HfHubHTTPError) and exc.response is not None:
        reason = f"the server answered HTTP {exc.response.status_code}"
    elif isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None:
        cause = exc.__cause__
        reason = f"could not reach the server ({type(cause).__name__}: {cause})"
    elif (cut := _CUT_SHORT.search(str(exc))) is not None:
        reason = (f"the download ended early: {cut['got']} of {cut['size']} bytes arrived "
                  "(nothing was kept); try again")
    else:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    return WeightsDownloadError(name, url, reason, hint=offline_hint(name))


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        digest.update(fh.read())  # git stores small files itself; large ones are LFS (sha256)
    return digest.hexdigest()


def _discard(pointer: Path, blob: Path) -> None:
    for path in (pointer, blob):
        path.unlink(missing_ok=True)


def _use_endpoint(endpoint: str | None) -> None:
    """Send all of huggingface_hub's requests to the configured hub, not only the file's:
    it reads ``HF_ENDPOINT`` once, at import, into the two constants set here (as that
    variable would have), and uses them for the rest (its once-a-day agent registry fetch
    included); a mirror configured in ``[zoo]`` must not leak those elsewhere."""
    from huggingface_hub import constants

    if endpoint and endpoint != constants.ENDPOINT:
        constants.ENDPOINT = endpoint
        constants.HUGGINGFACE_CO_URL_TEMPLATE = f"{endpoint}{_TEMPLATE}"


def _bar_class() -> Any:
    """huggingface_hub's progress bar on a terminal, none otherwise (logs, CI, services)."""
    if sys.stderr.isatty():
        return None
    from huggingface_hub.utils import tqdm

    class _Silent(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _Silent
