"""TF Hub weights downloaded on first use, against the fake hub on 127.0.0.1
(``tests/_hubserver.py``): the first ``create`` fetches the SavedModel through
``tensorflow_hub``'s resolver and records where it came from, later ones make no request;
offline nothing is fetched; a broken download never stays in the cache looking valid; a
``pull``ed folder works offline. Also ``url_download`` (timm weights published by URL),
checked against the hash prefix in the file's name."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

if any(importlib.util.find_spec(m) is None for m in ("tensorflow", "tensorflow_hub", "tf_keras")):
    pytest.skip("the tfhub extra is not installed: pip install 'cairn[tfhub]'",
                allow_module_level=True)

import numpy as np
from click.testing import CliRunner

import zoo
from tests._hubserver import HubServer, hub_server, online  # noqa: F401
from zoo._download import url_download
from zoo.errors import WeightsDownloadError, WeightsNotFoundError
from zoo.sources.tfhub import hub_cache_dir, import_tf

_mods = import_tf()
tf, tf_keras = _mods.tf, _mods.tf_keras

HANDLE_PATH = "google/tiny/feature_vector/2"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny hub-style SavedModel (a tf_keras conv net saved with tf.saved_model.save)."""
    inputs = tf_keras.Input((32, 32, 3))
    x = tf_keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path_factory.mktemp("savedmodel") / "tiny"
    tf.saved_model.save(model, str(path))
    return path


@pytest.fixture
def hub(online: HubServer, tmp_dir: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """The zoo online against the fake hub, in an empty workspace, with no proxy between."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                "all_proxy", "TFHUB_MODEL_LOAD_FORMAT"):
        monkeypatch.delenv(var, raising=False)
    return online


@pytest.fixture
def handle(hub: HubServer, saved_model: Path) -> str:
    """The handle URL of the tiny SavedModel on the fake hub; no request made yet."""
    url = hub.add_tfhub_archive(HANDLE_PATH, saved_model)
    hub.reset()
    return url


def _gets(server: HubServer) -> list[str]:
    return [r["path"] for r in server.requests() if r["method"] == "GET"]


def _valid_looking(cache: Path) -> list[Path]:
    """Every saved_model.pb under TF Hub's cache: a folder that would be trusted."""
    return sorted(cache.rglob("saved_model.pb")) if cache.exists() else []


def _works(model) -> None:
    assert model(np.zeros((2, 32, 32, 3), dtype="float32")).shape == (2, 3)


# --------------------------------------------------------------------------- first use


def test_first_create_downloads_then_the_cache_answers(hub, handle):
    model = zoo.create("tfhub:" + handle, num_classes=3)
    assert _gets(hub) == [f"/tfhub/{HANDLE_PATH}"]
    _works(model)
    prov = model.cairn_info.provenance
    assert isinstance(prov, zoo.WeightsProvenance)
    assert (prov.source, prov.repo_id, prov.revision) == ("tfhub", handle, "2")
    assert _HEX64.fullmatch(prov.sha256) and prov.size > 0
    assert Path(prov.location) == hub_cache_dir(handle)

    hub.reset()
    again = zoo.create("tfhub:" + handle, num_classes=3)
    assert hub.requests() == []
    assert again.cairn_info.provenance.sha256 == prov.sha256


@pytest.mark.parametrize("switch", ["CAIRN_OFFLINE", "HF_HUB_OFFLINE", "cairn.toml"])
def test_offline_fetches_nothing_and_says_how_to_pull(hub, handle, tmp_dir, monkeypatch,
                                                       switch):
    if switch == "cairn.toml":
        (tmp_dir / "cairn.toml").write_text("[zoo]\noffline = true\n")
        named = "[zoo]"
    else:
        monkeypatch.setenv(switch, "1")
        named = f"{switch}=1"
    with pytest.raises(WeightsNotFoundError) as err:
        zoo.create("tfhub:" + handle, num_classes=3)
    assert named in str(err.value) and "cairn zoo pull" in str(err.value)
    assert hub.requests() == []
    assert _valid_looking(Path(str(hub_cache_dir(handle).parent))) == []


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("fault", ["truncate", "404", "500", "drop"])
def test_a_failed_download_leaves_nothing_valid_looking_and_recovers(hub, handle, fault):
    cache = hub_cache_dir(handle).parent
    hub.fault(fault)
    with pytest.raises(WeightsDownloadError) as err:
        zoo.create("tfhub:" + handle, num_classes=3)
    assert handle in str(err.value) and err.value.url == handle
    assert _gets(hub), "the download was attempted"
    assert _valid_looking(cache) == []

    hub.fault(None)
    hub.reset()
    _works(zoo.create("tfhub:" + handle, num_classes=3))
    assert _gets(hub) == [f"/tfhub/{HANDLE_PATH}"]


def _archive(server: HubServer, saved_model: Path, damage: str) -> None:
    """Serve at ``HANDLE_PATH`` an archive that unpacks cleanly but holds a broken
    SavedModel: a variables shard left out, or a ``saved_model.pb`` that is not one."""
    archive = server.root / "tfhub" / f"{HANDLE_PATH}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for file in sorted(saved_model.rglob("*")):  # folders before what they hold
            name = file.relative_to(saved_model).as_posix()
            if damage == "shard_missing" and name.startswith("variables/variables.data-"):
                continue
            if damage == "not_a_saved_model" and name == "saved_model.pb":
                info = tarfile.TarInfo(name)
                info.size = 64
                tar.addfile(info, io.BytesIO(b"\xff" * 64))
                continue
            tar.add(file, arcname=name, recursive=False)


@pytest.mark.parametrize("damage", ["shard_missing", "not_a_saved_model"])
def test_an_incomplete_saved_model_is_removed_from_the_cache(hub, handle, saved_model,
                                                             damage):
    _archive(hub, saved_model, damage)
    with pytest.raises(WeightsDownloadError) as err:
        zoo.create("tfhub:" + handle, num_classes=3)
    assert err.value.url == handle and "removed from the cache" in str(err.value)
    assert _gets(hub) == [f"/tfhub/{HANDLE_PATH}"]
    cache = hub_cache_dir(handle)
    assert _valid_looking(cache.parent) == [] and not cache.exists()
    assert not Path(f"{cache}.descriptor.txt").exists()

    hub.add_tfhub_archive(HANDLE_PATH, saved_model)
    _works(zoo.create("tfhub:" + handle, num_classes=3))


# --------------------------------------------------------------------------- pull


def _offline_from(team: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline with ``team`` as the team's weights folder and TF Hub's cache emptied."""
    monkeypatch.setenv("CAIRN_OFFLINE", "1")
    monkeypatch.setenv(zoo.WEIGHTS_ENV, str(team))
    shutil.rmtree(hub_cache_dir("x").parent, ignore_errors=True)


def _check_pulled(hub: HubServer, handle: str, team: Path) -> None:
    folder = team / "tfhub" / hashlib.sha1(handle.encode()).hexdigest()
    assert (folder / "saved_model.pb").is_file()
    sidecar = json.loads(folder.with_name(folder.name + ".cairn.json").read_text())
    assert sidecar["repo_id"] == handle and _HEX64.fullmatch(sidecar["sha256"])
    assert sidecar["revision"] == "2"
    hub.reset()
    model = zoo.create("tfhub:" + handle, num_classes=3)
    _works(model)
    prov = model.cairn_info.provenance
    assert (prov.source, prov.repo_id, prov.revision) == ("tfhub", handle, "2")
    assert prov.sha256 == sidecar["sha256"] and Path(prov.location) == folder
    assert hub.requests() == []


def test_pulled_folder_works_offline(hub, handle, tmp_path, monkeypatch):
    team = tmp_path / "team"
    pulled = zoo.pull("tfhub:" + handle, to=team)
    assert (pulled.source, pulled.repo_id, pulled.revision) == ("tfhub", handle, "2")
    assert _gets(hub) == [f"/tfhub/{HANDLE_PATH}"]
    _offline_from(team, monkeypatch)
    _check_pulled(hub, handle, team)


def test_cli_pull_then_offline(hub, handle, tmp_path, monkeypatch):
    from zoo.cli import zoo as zoo_cli

    team = tmp_path / "team"
    args = ["pull", "tfhub:" + handle, "--to", str(team)]
    result = CliRunner().invoke(zoo_cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    _offline_from(team, monkeypatch)
    _check_pulled(hub, handle, team)


# --------------------------------------------------------------------------- url_download


def _serve(server: HubServer, name: str, data: bytes) -> str:
    """Serve ``data`` at ``<url>/tfhub/<name>`` (the tfhub route serves any bytes)."""
    file = server.root / "tfhub" / f"{name}.tar.gz"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(data)
    return f"{server.url}/tfhub/{name}"


def test_url_download_checks_the_hash_prefix(hub, tmp_path):
    data = b"weights " * 1000
    prefix = hashlib.sha256(data).hexdigest()[:8]
    folder = tmp_path / "checkpoints"
    got = url_download("w", _serve(hub, f"w-{prefix}.pth", data), folder)
    assert got == folder / f"w-{prefix}.pth" and got.read_bytes() == data
    assert sorted(p.name for p in folder.iterdir()) == [got.name]


def test_url_download_with_a_wrong_hash_prefix_leaves_no_file(hub, tmp_path):
    data = b"weights " * 1000
    wrong = "0" * 8 if not hashlib.sha256(data).hexdigest().startswith("0" * 8) else "1" * 8
    folder = tmp_path / "checkpoints"
    url = _serve(hub, f"w-{wrong}.pth", data)
    with pytest.raises(WeightsDownloadError) as err:
        url_download("w", url, folder)
    assert err.value.url == url and wrong in str(err.value)
    assert list(folder.iterdir()) == []
