"""Whether a dataset version is in its DVC remote, so that someone else can fetch it.

One existence check per dataset version: the remote's object for its md5 (for a folder, its
``.dir`` manifest, which ``dvc push`` uploads after the files). A local folder is checked on
disk; ``s3://`` through s3fs, with the remote's ``endpointurl``, ``region``, ``profile`` and
keys from ``.dvc/config`` (and ``config.local``), else the standard AWS settings
(``AWS_ENDPOINT_URL``...); any other protocol through fsspec when its package is installed.
The check is bounded (a 2 s connect and 3 s read timeout, one attempt); an answer other than
"there" or "not there" is None (unknown), and a remote that did not answer is not asked again
for a minute by this process, so a run start never waits on it twice.
"""

from __future__ import annotations

import os
import time

__all__ = ["is_pushed", "object_path", "remote_of"]

RETRY_AFTER_S = 60.0
_S3_CONFIG = {"connect_timeout": 2, "read_timeout": 3, "retries": {"max_attempts": 1}}
_down: dict[str, float] = {}  # remote URL -> monotonic time before which it is not asked
_seen: set[str] = set()  # objects found (they do not leave a remote in practice)


def remote_of(config: dict[str, dict[str, str]], name: str | None) -> dict[str, str]:
    """The ``['remote "name"']`` section of a DVC config ({} when absent)."""
    return config.get(f'remote "{name}"', {}) if name else {}


def object_path(url: str, md5: str, hash_kind: str | None) -> str:
    """Where DVC keeps the object for ``md5`` in the remote at ``url``: DVC 3 under
    ``files/md5/``, DVC 2 hashes (md5-dos2unix) at the top."""
    base = url.rstrip("/") if "://" in url else url
    parts = ["files", "md5"] if hash_kind == "md5" else []
    parts += [md5[:2], md5[2:]]
    return "/".join([base, *parts]) if "://" in url else os.path.join(base, *parts)


def is_pushed(url: str | None, md5: str | None, hash_kind: str | None,
              section: dict[str, str]) -> bool | None:
    """True/False when the remote answered whether it holds the object; None when unknown
    (no remote, no hash, or the remote did not answer)."""
    if not url or not md5:
        return None
    path = object_path(url, md5, hash_kind)
    if path in _seen:
        return True
    if "://" not in url or url.startswith("file://"):
        found = os.path.exists(path.removeprefix("file://"))
    elif time.monotonic() < _down.get(url, 0.0):
        return None
    else:
        try:
            found = _filesystem(url, section).exists(path)
        except Exception:  # an unreachable or refusing remote: unknown, never a failed run
            _down[url] = time.monotonic() + RETRY_AFTER_S
            return None
    if found:
        _seen.add(path)
    return found


def _filesystem(url: str, section: dict[str, str]):
    import fsspec

    if not url.startswith("s3://"):
        return fsspec.core.url_to_fs(url)[0]
    endpoint = (section.get("endpointurl") or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL"))
    client = {k: v for k, v in (("endpoint_url", endpoint),
                                ("region_name", section.get("region"))) if v}
    options = {k: section[c] for k, c in (("key", "access_key_id"),
                                          ("secret", "secret_access_key"),
                                          ("token", "session_token"),
                                          ("profile", "profile")) if section.get(c)}
    fs = fsspec.filesystem("s3", skip_instance_cache=True, client_kwargs=client,
                           config_kwargs=dict(_S3_CONFIG), **options)
    fs.retries = 1  # s3fs's own retry loop, around botocore's
    return fs
