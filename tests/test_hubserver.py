"""The fake hub of tests/_hubserver.py against the real clients' protocol; no Cairn code.

huggingface_hub downloads from it (HEAD for metadata, GET, Range resume) and a TF Hub style
handle answers ``?tf-hub-format=compressed`` with a tar.gz. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.request
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest
from huggingface_hub.errors import (
    EntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests._hubserver import HubServer, hub_server  # noqa: F401 (fixture)

REPO = "timm/test_resnet.r160_in1k"
FILE = "model.safetensors"
RESOLVE = f"/{REPO}/resolve/main/{FILE}"


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the suite's HF_HUB_OFFLINE=1 (read once, at import, into constants)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def payload(hub_server: HubServer) -> bytes:  # noqa: F811
    """1 MB of random bytes served as REPO/FILE."""
    data = os.urandom(1 << 20)
    hub_server.add_hf_file(REPO, FILE, data)
    return data


def download(server: HubServer, cache: Path, **kwargs: object) -> Path:
    """hf_hub_download of REPO/FILE from the fake hub into ``cache``."""
    return Path(huggingface_hub.hf_hub_download(
        REPO, FILE, endpoint=server.url, cache_dir=cache, token=False, **kwargs))


def blobs(cache: Path) -> list[Path]:
    return sorted(cache.glob("models--*/blobs/*"))


def test_download_counts_head_and_get(hub_server: HubServer, payload: bytes,  # noqa: F811
                                      tmp_path: Path) -> None:
    path = download(hub_server, tmp_path / "cache")
    assert path.read_bytes() == payload
    assert path.parent.name == hub_server.commit_of(REPO)
    assert [b.name for b in blobs(tmp_path / "cache")] == [hashlib.sha256(payload).hexdigest()]
    assert [(r["method"], r["path"], r["range"]) for r in hub_server.requests()] == [
        ("HEAD", RESOLVE, None), ("GET", RESOLVE, None)]
    hub_server.reset()
    assert hub_server.requests() == []


def test_commit_revision(hub_server: HubServer, payload: bytes,  # noqa: F811
                         tmp_path: Path) -> None:
    commit = hub_server.commit_of(REPO)
    assert download(hub_server, tmp_path / "cache", revision=commit).read_bytes() == payload
    with pytest.raises(RevisionNotFoundError):
        download(hub_server, tmp_path / "other", revision="0" * 40)


def test_truncate_fails_consistency_check(hub_server: HubServer, payload: bytes,  # noqa: F811
                                          tmp_path: Path) -> None:
    hub_server.fault("truncate")
    with pytest.raises(OSError, match="Consistency check failed"):
        download(hub_server, tmp_path / "cache")
    assert blobs(tmp_path / "cache") == []


def test_not_found(hub_server: HubServer, payload: bytes, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(EntryNotFoundError):
        huggingface_hub.hf_hub_download(REPO, "missing.bin", endpoint=hub_server.url,
                                        cache_dir=tmp_path / "cache", token=False)
    with pytest.raises(RepositoryNotFoundError):
        huggingface_hub.hf_hub_download("nobody/nothing", FILE, endpoint=hub_server.url,
                                        cache_dir=tmp_path / "cache", token=False)
    hub_server.fault("404")
    with pytest.raises(EntryNotFoundError):
        download(hub_server, tmp_path / "cache")


def test_drop_once_resumes_with_range(hub_server: HubServer, payload: bytes,  # noqa: F811
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # http_get keeps only whole DOWNLOAD_CHUNK_SIZE (10 MiB) chunks of a dropped body: with the
    # default, a 1 MB file would be fetched again from byte 0, without a Range header.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1 << 16)
    hub_server.fault("drop_once")
    assert download(hub_server, tmp_path / "cache").read_bytes() == payload
    gets = [r["range"] for r in hub_server.requests() if r["method"] == "GET"]
    assert gets == [None, f"bytes={len(payload) // 2}-"]


def test_wrong_digest_is_not_checked_by_huggingface_hub(
        hub_server: HubServer, payload: bytes, tmp_path: Path) -> None:  # noqa: F811
    hub_server.fault("wrong_digest")
    path = download(hub_server, tmp_path / "cache")
    assert path.read_bytes() == payload
    assert [b.name for b in blobs(tmp_path / "cache")] == [hashlib.sha256(b"other").hexdigest()]


def test_token(hub_server: HubServer, payload: bytes, tmp_path: Path) -> None:  # noqa: F811
    hub_server.fault(token="secret")
    with pytest.raises(RepositoryNotFoundError):
        download(hub_server, tmp_path / "cache")
    path = huggingface_hub.hf_hub_download(REPO, FILE, endpoint=hub_server.url,
                                           cache_dir=tmp_path / "cache", token="secret")
    assert Path(path).read_bytes() == payload


def test_tfhub_compressed(hub_server: HubServer, tmp_path: Path) -> None:  # noqa: F811
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"not really a graph")
    (model / "variables" / "variables.index").write_bytes(b"index")
    handle = hub_server.add_tfhub_archive("google/tiny/1", model)
    assert handle == f"{hub_server.url}/tfhub/google/tiny/1"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{handle}?tf-hub-format=compressed", timeout=10) as response:
        body = response.read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert tar.extractfile("saved_model.pb").read() == b"not really a graph"
        assert "variables/variables.index" in tar.getnames()
    assert hub_server.requests() == [{"method": "GET", "path": "/tfhub/google/tiny/1",
                                      "range": None}]


def test_the_suite_cannot_connect_beyond_loopback():
    import socket

    from tests.conftest import NetworkLeak

    with socket.socket() as sock, pytest.raises(NetworkLeak):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
