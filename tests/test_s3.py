"""Artifacts and data on S3, against a real S3-protocol server on 127.0.0.1 (moto's server
mode, credentials checked; see tests/_s3server.py).

The artifact store reads the endpoint and keys from the standard AWS settings; every failure
(no s3fs, an unreachable endpoint, a missing bucket, wrong credentials, the server gone
mid-upload) is an ArtifactError naming the URL; a run never dies of one: the file is spooled,
the run says so, and it is stored and recorded once the store is back. Nothing half-written
is ever referenced. DVC data pushed to a remote on the same server is recorded as pushed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import registry
from registry import _s3
from registry.artifacts import ArtifactStore
from registry.config import Workspace
from registry.errors import ArtifactError
from registry.tracking import spool
from tests._s3server import S3, S3Proxy, free_port, new_bucket, s3_server  # noqa: F401
from tests.conftest import git

pytest.importorskip("s3fs", reason="s3fs is not installed (the s3 extra)")

MiB = 1 << 20


def blob(path: Path, size: int, seed: int = 0) -> Path:
    """A file of ``size`` pseudo-random bytes (different for each seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    with path.open("wb") as out:
        for start in range(0, size, MiB):
            out.write(block[: min(MiB, size - start)])
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def s3(s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3:  # noqa: F811
    """A bucket of the test's own on the session's server; the AWS settings point there."""
    return new_bucket(s3_server, tmp_path, monkeypatch)


def without_s3fs(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if s3fs were not installed: importing it fails, and fsspec has not loaded it."""
    loaded = importlib.import_module("fsspec.registry")._registry
    monkeypatch.setitem(sys.modules, "s3fs", None)
    for protocol in ("s3", "s3a"):
        monkeypatch.delitem(loaded, protocol, raising=False)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs s3fs uploads to from now on (one PUT or multipart upload each): a file read
    by s3fs (_put_file) or bytes already read (_pipe_file)."""
    import s3fs

    urls: list[str] = []

    def spy(method: str, arg: int):
        send = getattr(s3fs.S3FileSystem, method)

        def call(self, *args, **kwargs):
            urls.append(args[arg])
            return send(self, *args, **kwargs)

        monkeypatch.setattr(s3fs.S3FileSystem, method, call)

    spy("_put_file", 1)
    spy("_pipe_file", 0)
    return urls


def key_of(uri: str) -> str:
    """The object key of an s3:// URL."""
    return uri.split("/", 3)[3]


def whole_blobs(s3: S3) -> list[str]:
    """Every key in the bucket, each checked to hold exactly the bytes its digest names."""
    keys = s3.keys()
    for key in keys:
        body = s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        digest = hashlib.sha256(body).hexdigest()
        assert key == f"artifacts/sha256/{digest[:2]}/{digest[2:]}", key
    return keys


def on_s3(workspace: Workspace, s3: S3) -> Workspace:
    return replace(workspace, artifact_root=s3.url())


def pending(ws: Workspace) -> list[Path]:
    return sorted((ws.state_dir / "spool" / "artifacts").glob("*.json"))


# -- the artifact store ----------------------------------------------------------------------


def test_blobs_go_to_s3_from_the_aws_settings(s3: S3, tmp_path: Path) -> None:
    store = ArtifactStore(s3.url("team/artifacts"))  # endpoint and keys: environment only
    files = [blob(tmp_path / f"f{i}.bin", 1000 + i, seed=i) for i in range(3)]
    stored = store.put_files(files)
    assert [s[0] for s in stored] == [sha(f) for f in files]
    assert stored[0][2] == f"s3://{s3.bucket}/team/artifacts/sha256/{stored[0][0][:2]}/" \
                           f"{stored[0][0][2:]}"
    digest, size, uri = store.put_bytes(b"a diff\n")
    assert (size, uri) == (7, store.uri(digest))
    assert s3.keys() == sorted(f"team/artifacts/sha256/{d[:2]}/{d[2:]}"
                               for d in [digest, *(s[0] for s in stored)])
    assert store.open(digest).read() == b"a diff\n"
    copy = store.get(stored[1][0], tmp_path / "out" / "copy.bin")
    assert copy.read_bytes() == files[1].read_bytes()
    assert store.put_file(files[0]) == stored[0]  # the same bytes again: same blob


def test_a_large_file_goes_up_in_parts_and_whole(s3: S3, tmp_path: Path) -> None:
    big = blob(tmp_path / "big.bin", 20 * MiB + 123)
    store = ArtifactStore(s3.url(), part_size=5 * MiB)
    digest, size, uri = store.put_file(big)
    head = s3.client().head_object(Bucket=s3.bucket, Key=uri.split("/", 3)[3])
    assert head["ContentLength"] == size == big.stat().st_size
    assert head["ETag"].strip('"').endswith("-5")  # a multipart upload of 5 parts
    assert sha(store.get(digest, tmp_path / "back.bin")) == digest


@pytest.mark.parametrize("fault", ["missing bucket", "wrong credentials", "unreachable",
                                   "no s3fs"])
def test_each_failure_is_an_artifact_error_naming_the_url(s3: S3, tmp_path: Path,
                                                          monkeypatch, fault: str) -> None:
    root = s3.url()
    if fault == "missing bucket":
        root = "s3://no-such-bucket-here/artifacts"
    elif fault == "wrong credentials":
        s3.point_at(s3.server.url, secret="not-the-secret")
    elif fault == "unreachable":
        s3.point_at(f"http://127.0.0.1:{free_port()}")
    else:
        without_s3fs(monkeypatch)
    store = ArtifactStore(root)
    source = blob(tmp_path / "model.bin", 4096)
    digest = sha(source)
    started = time.monotonic()
    with pytest.raises(ArtifactError) as put:
        store.put_file(source)
    assert time.monotonic() - started < 6  # unreachable: 3 tries, about 1 s (botocore's own: 8)
    message = str(put.value)
    assert (store.uri(digest) if fault != "no s3fs" else root) in message, message
    expected = {"missing bucket": "bucket 'no-such-bucket-here' does not exist",
                "wrong credentials": "access denied", "unreachable": "Could not connect",
                "no s3fs": "cairn[s3]"}[fault]
    assert expected in message, message
    with pytest.raises(ArtifactError, match=re.escape(expected)):
        store.put_bytes(b"diff")
    if fault != "missing bucket":
        assert s3.keys() == []


def test_a_server_gone_mid_upload_leaves_nothing_under_the_digest(s3: S3,
                                                                 tmp_path: Path) -> None:
    proxy = S3Proxy(s3.server.port).start()
    s3.point_at(proxy.url)
    big = blob(tmp_path / "big.bin", 20 * MiB)
    store = ArtifactStore(s3.url(), part_size=5 * MiB)
    proxy.stop_after(8 * MiB)  # the server goes away while the parts go up
    with pytest.raises(ArtifactError, match=f"{store.uri(sha(big))}.*"):
        store.put_file(big)
    assert proxy.stopped.is_set()
    assert s3.keys() == []  # no object, whole or partial: an unfinished multipart upload
    assert s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads")
    proxy.start()  # the server is back
    digest, _, uri = ArtifactStore(s3.url(), part_size=5 * MiB).put_file(big)
    assert s3.keys() == [uri.split("/", 3)[3]]
    assert sha(store.get(digest, tmp_path / "back.bin")) == sha(big)
    proxy.stop()


def test_every_object_is_a_whole_blob_under_its_own_digest(s3: S3, tmp_path: Path,
                                                           sent: list[str]) -> None:
    files = [blob(tmp_path / f"plot{i}.png", 1000 * (i + 1), seed=i) for i in range(5)]
    files += [blob(tmp_path / "ckpt0.pt", _s3.ASK_FIRST, seed=10),
              blob(tmp_path / "ckpt1.pt", 12 * MiB, seed=11),  # a multipart upload
              blob(tmp_path / "again.pt", _s3.ASK_FIRST, seed=10)]  # ckpt0's bytes again
    store = ArtifactStore(s3.url(), part_size=5 * MiB)
    stored = store.put_files(files)
    assert stored == [(sha(f), f.stat().st_size, store.uri(sha(f))) for f in files]
    assert sorted(sent) == sorted({store.uri(sha(f)) for f in files})  # the copy went up once
    assert whole_blobs(s3) == sorted(key_of(store.uri(sha(f))) for f in files[:-1])
    assert not s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads")


def test_big_blobs_already_stored_are_not_sent_again(s3: S3, tmp_path: Path,
                                                     sent: list[str]) -> None:
    big = [blob(tmp_path / f"ckpt{i}.pt", _s3.ASK_FIRST + i, seed=50 + i) for i in range(3)]
    small = blob(tmp_path / "loss.png", 100, seed=59)
    store = ArtifactStore(s3.url())
    store.put_files([big[0], small])
    # Half of big[2] under its digest (another writer's failed copy): not taken as stored.
    s3.client().put_object(Bucket=s3.bucket, Key=key_of(store.uri(sha(big[2]))),
                           Body=big[2].read_bytes()[: MiB])
    sent.clear()
    stored = store.put_files([*big, small])  # big ones: one HEAD each, all at once
    assert stored == [(sha(f), f.stat().st_size, store.uri(sha(f))) for f in [*big, small]]
    assert sorted(sent) == sorted(store.uri(sha(f)) for f in [big[1], big[2], small])
    assert len(whole_blobs(s3)) == 4
    sent.clear()
    assert store.put_file(big[2]) == stored[2] and sent == []  # stored: nothing sent


def test_a_file_rewritten_as_it_goes_up_is_stored_as_hashed(s3: S3, tmp_path: Path,
                                                            monkeypatch) -> None:
    import s3fs

    ckpt = blob(tmp_path / "last.ckpt", 3 * MiB, seed=80)
    hashed, pipe = sha(ckpt), s3fs.S3FileSystem._pipe_file

    async def rewritten_then_sent(self, path, data, **kwargs):
        blob(ckpt, 3 * MiB, seed=81)  # the script saves its next checkpoint meanwhile
        return await pipe(self, path, data, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_pipe_file", rewritten_then_sent)
    digest, size, uri = ArtifactStore(s3.url()).put_file(ckpt)
    assert digest == hashed != sha(ckpt) and size == 3 * MiB
    assert whole_blobs(s3) == [key_of(uri)]  # read once: the bytes hashed are the bytes sent


def test_a_file_unreadable_midway_ends_the_uploads_under_way_first(s3: S3, tmp_path: Path,
                                                                   sent: list[str]) -> None:
    first = [blob(tmp_path / f"f{i}.bin", 2000 + i, seed=60 + i) for i in range(2)]
    last = blob(tmp_path / "last.bin", 3000, seed=69)
    store = ArtifactStore(s3.url())
    with pytest.raises(ArtifactError, match=r"gone\.bin.*cannot read"):
        store.put_files([*first, tmp_path / "gone.bin", last])
    # The files hashed before it went up whole before the error was raised; the rest did not.
    assert whole_blobs(s3) == sorted(key_of(store.uri(sha(f))) for f in first)
    assert len(sent) == 2


def test_a_server_gone_during_several_uploads_leaves_only_whole_blobs(s3: S3, tmp_path: Path,
                                                                     sent: list[str]) -> None:
    proxy = S3Proxy(s3.server.port).start()
    s3.point_at(proxy.url)
    files = [blob(tmp_path / f"ckpt{i}.pt", _s3.ASK_FIRST, seed=70 + i) for i in range(3)]
    uris = [ArtifactStore(s3.url()).uri(sha(f)) for f in files]
    proxy.stop_after(12 * MiB)  # the server goes away while they go up together
    with pytest.raises(ArtifactError) as failed:
        ArtifactStore(s3.url(), part_size=5 * MiB).put_files(files)
    assert proxy.stopped.is_set()
    assert any(f"artifact {str(f)!r}: cannot store at {uri}: " in str(failed.value)
               for f, uri in zip(files, uris, strict=True)), failed.value
    kept = whole_blobs(s3)  # none half-written: only whole blobs, if any went up in time
    proxy.start()
    sent.clear()
    ArtifactStore(s3.url(), part_size=5 * MiB).put_files(files)
    assert sorted(sent) == sorted(u for u in uris if key_of(u) not in kept)
    assert whole_blobs(s3) == sorted(key_of(u) for u in uris)
    proxy.stop()


def test_the_standard_retry_mode_unless_the_aws_settings_choose(
        s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    store = ArtifactStore(s3.url())
    store.connect()
    assert store._filesystem().s3.meta.config.retries == {"mode": "standard",
                                                           "total_max_attempts": 3}

    def retries() -> dict | None:
        return _s3.options(s3.url())["config_kwargs"].get("retries")

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "10")
    assert retries() is None  # botocore reads the user's choice itself
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    config.write_text("[default]\nretry_mode = adaptive\n")
    assert retries() is None
    config.write_text("[default]\nregion = us-east-1\n")
    assert retries() == {"mode": "standard", "total_max_attempts": 3}


# -- runs ------------------------------------------------------------------------------------


def dirty(repo: Path, text: str) -> None:
    """An uncommitted change: the run stores its diff at its start."""
    (repo / "train.py").write_text(text)


def test_a_run_stores_its_artifacts_and_diff_on_s3(workspace: Workspace, repo: Path, s3: S3,
                                                   tmp_path: Path) -> None:
    ws = on_s3(workspace, s3)
    dirty(repo, "print('uncommitted')\n")
    model = blob(tmp_path / "out" / "model.bin", 3 * MiB, seed=1)
    plots = tmp_path / "out" / "plots"
    for i in range(3):
        blob(plots / f"p{i}.png", 2000 + i, seed=10 + i)
    with registry.start_run(workspace=ws, params={"lr": 0.1}) as run:
        one = run.log_artifact(model, name="ckpt/model.bin")
        last = run.log_artifact(plots)
    record = registry.get_run(run.id, workspace=ws)
    assert record.status == "FINISHED" and not [w for w in record.warnings if "store" in w]
    assert one.uri.startswith(f"s3://{s3.bucket}/artifacts/sha256/") and last.name == "plots/p2.png"
    got = {a.name: a for a in record.artifacts}
    assert sorted(got) == ["ckpt/model.bin", "plots/p0.png", "plots/p1.png", "plots/p2.png"]
    store = ArtifactStore(ws.artifact_root)
    for name, source in [("ckpt/model.bin", model), *((f"plots/p{i}.png", plots / f"p{i}.png")
                                                       for i in range(3))]:
        assert got[name].sha256 == sha(source) and got[name].uri == store.uri(sha(source))
        assert sha(store.get(got[name].sha256, tmp_path / "back" / name)) == sha(source)
    diff = record.code["diff_sha256"]
    assert b"print('uncommitted')" in store.open(diff).read()
    assert not pending(ws)


def break_store(fault: str, s3: S3, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the artifact store fail as ``fault`` says; the words its warning holds."""
    if fault == "no s3fs":
        without_s3fs(monkeypatch)
        return "Install s3fs"
    if fault == "unreachable":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        return "Could not connect"
    if fault == "missing bucket":
        s3.client().delete_bucket(Bucket=s3.bucket)
        return f"bucket {s3.bucket!r} does not exist"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    return "access denied"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fault", ["no s3fs", "unreachable", "missing bucket",
                                   "wrong credentials"])
def test_a_run_never_dies_of_its_artifact_store(workspace: Workspace, repo: Path, s3: S3,
                                                tmp_path: Path, fault: str) -> None:
    ws = on_s3(workspace, s3)
    dirty(repo, "print('not stored yet')\n")
    model = blob(tmp_path / "out" / "model.bin", 64 << 10, seed=2)
    with pytest.MonkeyPatch.context() as broken:
        words = break_store(fault, s3, broken)
        with registry.start_run(workspace=ws) as run:
            kept = run.log_artifact(model, name="model.bin")  # does not raise
            run.log_metric("loss", 0.5)
        record = registry.get_run(run.id, workspace=ws)
        assert record.status == "FINISHED" and record.metrics["loss"].last == 0.5
        assert record.artifacts == [] and record.code["diff_sha256"] is None  # nothing pending
        said = "\n".join(record.warnings)
        assert "could not store artifact 'model.bin'" in said and words in said, said
        assert "could not store the uncommitted diff" in said and "still wait" in said, said
        assert kept.sha256 == sha(model) and Path(kept.uri).read_bytes() == model.read_bytes()
        assert len(pending(ws)) == 2
    # The store is back: the next run's start (or `cairn runs deliver`) stores and records both.
    if fault == "missing bucket":
        s3.client().create_bucket(Bucket=s3.bucket)
    if fault == "no s3fs":
        registry.start_run(workspace=ws, name="next").end()
    else:
        report = spool.deliver(ws)
        assert report.ok and report.artifacts == 2, report.summary()
    record = registry.get_run(run.id, workspace=ws)
    assert [(a.name, a.sha256) for a in record.artifacts] == [("model.bin", sha(model))]
    store = ArtifactStore(ws.artifact_root)
    assert store.open(sha(model)).read() == model.read_bytes()
    assert b"not stored yet" in store.open(record.code["diff_sha256"]).read()
    assert "2 artifacts stored late from the local spool" in record.warnings[-1]
    assert not pending(ws) and not list((ws.state_dir / "spool" / "artifacts").rglob("*.bin"))
    assert not [p for p in (ws.state_dir / "spool" / "artifacts" / "sha256").rglob("*")
                if p.is_file()]


def test_a_server_gone_mid_upload_and_back_loses_nothing(workspace: Workspace, s3: S3,
                                                         tmp_path: Path) -> None:
    proxy = S3Proxy(s3.server.port).start()
    s3.point_at(proxy.url)
    ws = on_s3(workspace, s3)
    big = blob(tmp_path / "out" / "model.safetensors", 20 * MiB, seed=3)
    with registry.start_run(workspace=ws) as run:
        proxy.stop_after(4 * MiB)
        run.log_artifact(big)
        assert proxy.stopped.is_set()
        assert run.record().artifacts == [] and s3.keys() == []  # nothing half-written
        proxy.start()  # back before the run ends, which stores and records it
    record = registry.get_run(run.id, workspace=ws)
    assert [(a.name, a.sha256, a.size) for a in record.artifacts] == [
        ("model.safetensors", sha(big), big.stat().st_size)]
    assert "stored late from the local spool at the run's end" in record.warnings[-1]
    assert sha(ArtifactStore(ws.artifact_root).get(sha(big), tmp_path / "back")) == sha(big)
    assert not pending(ws)
    proxy.stop()


# -- data others can fetch: a DVC remote on the same server ----------------------------------


def dvc(cwd: Path, *args: str) -> str:
    return git_like(cwd, sys.executable, "-m", "dvc", *args)


def git_like(cwd: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "DVC_GLOBAL_CONFIG_DIR": str(cwd.parent / "dvc-global"),
           "DVC_SYSTEM_CONFIG_DIR": str(cwd.parent / "dvc-system"),
           "DVC_SITE_CACHE_DIR": str(cwd.parent / "dvc-site")}
    env.pop("DVC_STAGE", None)
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dvc_repo(repo: Path, s3: S3, endpoint: str | None) -> None:
    """data/train (a folder) and data/val.csv added with `dvc add`; a default remote on the
    bucket (its endpoint in .dvc/config, or from AWS_ENDPOINT_URL when None)."""
    dvc(repo, "init", "-q")
    for i in range(3):
        blob(repo / "data" / "train" / f"img{i}.png", 500 + i, seed=20 + i)
    (repo / "data" / "val.csv").write_text("a,b\n1,2\n")
    dvc(repo, "add", "-q", "data/train", "data/val.csv")
    dvc(repo, "remote", "add", "-d", "team", f"s3://{s3.bucket}/dvc")
    if endpoint:
        dvc(repo, "remote", "modify", "team", "endpointurl", endpoint)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")


def pushed_of(ws: Workspace, run_id: str) -> dict[str, bool | None]:
    return {d.path: d.pushed for d in registry.get_run(run_id, workspace=ws).datasets}


def test_runs_say_whether_their_data_is_in_the_dvc_remote(workspace: Workspace, repo: Path,
                                                         s3: S3, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from registry.cli import cli

    dvc_repo(repo, s3, endpoint=s3.server.url)
    data = {"train": "data/train", "val": "data/val.csv"}
    with registry.start_run(workspace=workspace, data=data) as before:
        pass
    assert pushed_of(workspace, before.id) == {"data/train": False, "data/val.csv": False}
    dvc(repo, "push", "-q", "data/train")
    with registry.start_run(workspace=workspace, data=data) as after:
        pass
    assert pushed_of(workspace, after.id) == {"data/train": True, "data/val.csv": False}
    dvc(repo, "push", "-q")
    with registry.start_run(workspace=workspace, data=data) as everything:
        pass
    assert pushed_of(workspace, everything.id) == {"data/train": True, "data/val.csv": True}
    def search(query: str) -> set[str]:
        return {r.id for r in registry.search(query, workspace=workspace).runs}

    assert search("data.pushed = false") == {before.id, after.id}
    assert search("data.train.pushed = false") == {before.id}
    assert search("data.train.pushed = true") == {after.id, everything.id}
    assert search("data.pushed = unknown") == set()
    shown = CliRunner().invoke(cli, ["runs", "show", before.id],
                               env={"CAIRN_STORE": workspace.store_url})
    assert shown.exit_code == 0 and "NO: not in the DVC remote" in shown.output, shown.output
    # A backup carries it (and the artifacts' S3 references) to another store.
    from registry.store import SqlStore
    from registry.transfer.backup import export_runs, import_runs

    lines = [json.dumps(d) for d in export_runs(workspace.open_store(),
                                                 [workspace.open_store().resolve(after.id)])]
    other = SqlStore(f"sqlite:///{tmp_path / 'other.db'}")
    assert import_runs(other, lines).imported == [after.id]
    copied = other.get_run(other.resolve(after.id))
    assert {d.path: d.pushed for d in copied.datasets} == {"data/train": True,
                                                           "data/val.csv": False}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_data_pushed_is_unknown_when_the_remote_does_not_answer(workspace: Workspace,
                                                                repo: Path, s3: S3) -> None:
    dvc_repo(repo, s3, endpoint=None)  # the endpoint from AWS_ENDPOINT_URL, as DVC reads it
    dvc(repo, "push", "-q", "data/train")
    data = {"train": "data/train", "val": "data/val.csv"}
    with registry.start_run(workspace=workspace, data=data) as run:
        pass
    assert pushed_of(workspace, run.id) == {"data/train": True, "data/val.csv": False}
    s3.point_at(s3.server.url, secret="not-the-secret")  # refused: no answer either way
    (repo / "data" / "val.csv").write_text("a,b\n3,4\n")
    dvc(repo, "add", "-q", "data/val.csv")  # a version this process has not asked about
    with registry.start_run(workspace=workspace, data=data) as refused:
        pass
    record = registry.get_run(refused.id, workspace=workspace)
    assert record.status == "FINISHED"
    assert pushed_of(workspace, refused.id) == {"data/train": True, "data/val.csv": None}


def test_uploads_under_way_hold_a_bounded_amount_of_memory():
    import threading

    gate = _s3._Gate(most=3, budget=100)
    gate.enter(60)
    entered = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.enter(60), entered.set()))
    waiter.start()
    assert not entered.wait(0.2)  # 120 bytes would be over the budget
    gate.leave(60)
    assert entered.wait(5)
    gate.leave(60)
    waiter.join()

    gate.enter(500)  # alone, a file bigger than the budget still goes
    gate.leave(500)
    for _ in range(3):
        gate.enter(0)
    assert gate.count == 3 and gate.held == 0
