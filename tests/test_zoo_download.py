"""timm weights downloaded on first use, from a hub on 127.0.0.1: verified, counted, offline.

The server (tests/_hubserver.py) speaks the part of the Hugging Face file API that
huggingface_hub uses and can misbehave on demand: wrong digest, truncated body, 404, 500,
a dropped connection, a token it requires.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from safetensors.torch import save_file

import zoo
from tests._hubserver import commit_of, hub_server, online  # noqa: F401
from zoo._compat import import_timm
from zoo.errors import WeightsDownloadError, WeightsNotFoundError

NAME = "test_resnet.r160_in1k"
REPO = f"timm/{NAME}"
FILE_PATH = f"/{REPO}/resolve/main/model.safetensors"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real state dict of timm's test_resnet, as its hub repository would hold it."""
    model = import_timm().create_model(NAME, pretrained=False)
    path = tmp_path_factory.mktemp("w") / "model.safetensors"
    save_file(model.state_dict(), str(path))
    return path.read_bytes()


@pytest.fixture
def hub(online, weights, tmp_dir):  # noqa: F811
    online.add_hf_file(REPO, "model.safetensors", weights)
    return online


def file_requests(hub) -> list[dict]:
    return [r for r in hub.requests() if r["path"].startswith(f"/{REPO}/")]


def blobs(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "hf").rglob("blobs/*") if p.is_file()]


def test_first_use_downloads_verified_and_records_where_from(hub, weights, tmp_path):
    import hashlib

    model = zoo.create(NAME, num_classes=4)
    prov = model.cairn_info.provenance
    assert (prov.source, prov.repo_id, prov.file) == ("hf-hub", REPO, "model.safetensors")
    assert prov.revision == commit_of(REPO)
    assert prov.sha256 == hashlib.sha256(weights).hexdigest()
    assert prov.size == len(weights)
    assert prov.params()["base_weights.sha256"] == prov.sha256
    assert [r["method"] for r in file_requests(hub)] == ["HEAD", "GET"]
    assert model.num_classes == 4


def test_second_use_makes_no_request(hub):
    zoo.create(NAME, num_classes=4)
    hub.reset()
    again = zoo.create(NAME, num_classes=2)
    assert hub.requests() == []
    assert again.cairn_info.provenance.source == "hf-hub"


@pytest.mark.parametrize("switch", ["CAIRN_OFFLINE", "HF_HUB_OFFLINE", "config"])
def test_offline_makes_no_request_and_says_what_to_do(hub, monkeypatch, tmp_path, switch):
    if switch == "config":
        (tmp_path / "cairn.toml").write_text("[zoo]\noffline = true\n")
    else:
        monkeypatch.setenv(switch, "1")
    with pytest.raises(WeightsNotFoundError) as err:
        zoo.create(NAME, num_classes=4)
    message = str(err.value)
    assert "cairn zoo pull" in message and "offline" in message
    assert (switch if switch != "config" else "[zoo]") in message
    assert hub.requests() == []


def test_a_team_mirror_from_the_workspace_configuration(hub, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_ENDPOINT")
    (tmp_path / "cairn.toml").write_text(f'[zoo]\nhf_endpoint = "{hub.url}"\n')
    assert zoo.create(NAME, num_classes=4).cairn_info.provenance.repo_id == REPO
    assert file_requests(hub)


@pytest.mark.parametrize("fault", ["wrong_digest", "truncate", "500_get", "404"])
def test_a_bad_download_is_a_typed_error_and_never_stays_in_the_cache(hub, tmp_path, fault):
    hub.fault(fault)
    with pytest.raises(WeightsDownloadError) as err:
        zoo.create(NAME, num_classes=4)
    assert err.value.url.startswith(hub.url)
    if fault == "wrong_digest":
        assert err.value.expected != err.value.actual and err.value.actual
    else:
        assert "zoo pull" in str(err.value)
    assert blobs(tmp_path) == []
    hub.fault(None)  # the next try, with a sound server, downloads and verifies
    assert zoo.create(NAME, num_classes=4).cairn_info.provenance.source == "hf-hub"


def test_a_connection_dropped_mid_file_every_time_is_an_error(hub, tmp_path, monkeypatch):
    import huggingface_hub.file_download as fd

    monkeypatch.setattr(fd.time, "sleep", lambda s: None)  # its five 1 s pauses before resuming
    hub.fault("drop")
    with pytest.raises(WeightsDownloadError):
        zoo.create(NAME, num_classes=4)
    assert blobs(tmp_path) == []


def test_an_unreachable_hub_says_what_it_tried(hub, monkeypatch, tmp_path):
    import huggingface_hub.utils._http as http

    monkeypatch.setattr(http.time, "sleep", lambda s: None)  # its back-off between retries
    url = hub.url
    hub.stop()
    with pytest.raises(WeightsDownloadError) as err:
        zoo.create(NAME, num_classes=4)
    assert err.value.url.startswith(url) and "CAIRN_WEIGHTS_DIR" in str(err.value)


def test_a_private_mirror_takes_the_usual_token(hub, monkeypatch):
    hub.fault(None, token="s3cret")
    with pytest.raises(WeightsDownloadError, match="HF_TOKEN"):
        zoo.create(NAME, num_classes=4)
    monkeypatch.setenv("HF_TOKEN", "s3cret")
    assert zoo.create(NAME, num_classes=4).cairn_info.provenance.repo_id == REPO


def test_pull_then_create_offline_from_a_copied_folder(hub, monkeypatch, tmp_path, weights):
    pulled = zoo.pull(NAME, to=tmp_path / "team")
    target = tmp_path / "team" / "timm" / f"{NAME}.safetensors"
    assert Path(pulled.location) == target and target.read_bytes() == weights
    assert zoo.pull(NAME, to=tmp_path / "team").sha256 == pulled.sha256  # already there
    # The cluster: a copy with new file times, no Hugging Face cache, no network.
    shutil.copytree(tmp_path / "team", tmp_path / "cluster", copy_function=shutil.copyfile)
    shutil.rmtree(tmp_path / "hf")
    monkeypatch.setenv("CAIRN_OFFLINE", "1")
    monkeypatch.setenv("CAIRN_WEIGHTS_DIR", str(tmp_path / "cluster"))
    hub.reset()
    assert [m.name for m in zoo.list(NAME, available_only=True)] == [NAME]
    prov = zoo.create(NAME, num_classes=4).cairn_info.provenance
    assert (prov.repo_id, prov.revision, prov.sha256) == (REPO, commit_of(REPO), pulled.sha256)
    assert hub.requests() == []


def test_weights_given_by_file_are_recorded_by_digest(tmp_path, weights):
    import hashlib

    path = tmp_path / "mine.safetensors"
    path.write_bytes(weights)
    prov = zoo.create("test_resnet", num_classes=3, weights=path).cairn_info.provenance
    assert (prov.source, prov.sha256) == ("file", hashlib.sha256(weights).hexdigest())
    assert "base_weights.repo" not in prov.params()
    assert not (tmp_path / "mine.safetensors.cairn.json").exists()  # nothing beside it


def test_a_finetune_records_its_weights_and_tells_other_weights_apart(hub, tmp_path, weights):
    """Same backbone, same data, same options: the same weights are "the same experiment";
    other weights of that backbone are only similar, and the difference is named."""
    import registry
    from registry.config import Workspace
    from tests.test_zoo_data import make_folder

    images = make_folder(tmp_path / "images", {"cat": 4, "dog": 4}, size=32)
    ws = Workspace(root=tmp_path, store_url=f"sqlite:///{tmp_path / 'registry.db'}",
                   artifact_root=str(tmp_path / "artifacts"), catalog_dir=tmp_path / "catalog",
                   owner="tester", flush_interval=0.05, system_interval=0,
                   costs={"currency": "EUR", "cpu_core": 0.04})
    options = dict(epochs=1, batch_size=4, image_size=32, workers=0, workspace=ws,
                   progress=False, project="p", seed=1)
    first = zoo.finetune(NAME, images, **options)
    record = registry.get_run(first.run_id, workspace=ws)
    p = record.params
    assert (p["base_weights.source"], p["base_weights.repo"]) == ("hf-hub", REPO)
    assert p["base_weights.revision"] == commit_of(REPO) and len(p["base_weights.sha256"]) == 64

    import catalog

    card = catalog.read_card(catalog.draft_from_run(first.run_id, name="pets", track="none",
                                                    workspace=ws))
    assert card.front_matter["base_model"] == REPO
    assert card.front_matter["base_weights"]["sha256"] == p["base_weights.sha256"]
    assert card.front_matter["training_cost"]["currency"] == "EUR"
    assert card.front_matter["training_cost"]["cost"] > 0
    assert not [e for e in catalog.validate(card.path, workspace=ws) if e.severity == "error"]

    same = zoo.finetune(NAME, images, **options)
    assert [(m.run.id, m.exact) for m in registry.similar(same.run_id, workspace=ws)] == [
        (first.run_id, True)]
    other = tmp_path / "other.safetensors"
    save_file({k: v + 0 for k, v in _state(weights).items()} | {"fc.bias": _state(weights)[
        "fc.bias"] + 1}, str(other))
    second = zoo.finetune(NAME, images, weights=other, **options)
    p2 = registry.get_run(second.run_id, workspace=ws).params
    assert p2["base_weights.sha256"] != p["base_weights.sha256"]
    priors = registry.similar(second.run_id, workspace=ws)
    match = next(prior for prior in priors if prior.run.id == first.run_id)
    assert not match.exact and "base_weights.sha256" in match.differences


def _state(data: bytes) -> dict:
    from safetensors.torch import load

    return load(data)


def test_cli_pull_then_list_available_offline(hub, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from zoo.cli import zoo as zoo_cli

    team = tmp_path / "team"
    result = CliRunner().invoke(zoo_cli, ["pull", NAME, "nonexistent_arch.x", "--to", str(team)])
    assert result.exit_code == 1, result.output
    assert NAME in result.output and REPO in result.output and "1 of 2 not pulled" in result.output
    assert f"CAIRN_WEIGHTS_DIR={team}" in result.output
    monkeypatch.setenv("CAIRN_OFFLINE", "1")
    monkeypatch.setenv("CAIRN_WEIGHTS_DIR", str(team))
    listed = CliRunner().invoke(zoo_cli, ["list", "test_resnet", "--available"])
    assert listed.exit_code == 0 and NAME in listed.output


@pytest.mark.parametrize(("table", "problem"), [
    ("offline = 1", "zoo.offline must be true or false"),
    ('hf_endpoint = "ftp://mirror"', "zoo.hf_endpoint must be an http(s) URL"),
    ("mirror = true", "unknown setting zoo.'mirror'"),
    ("weights_dir = 3", "zoo.weights_dir must be a folder path"),
])
def test_bad_zoo_settings_are_config_errors_before_any_request(hub, tmp_path, table, problem):
    from registry.errors import ConfigError

    (tmp_path / "cairn.toml").write_text(f"[zoo]\n{table}\n")
    with pytest.raises(ConfigError, match=re.escape(problem)):
        zoo.create(NAME, num_classes=4)
    assert hub.requests() == []


def test_an_unclear_offline_switch_is_a_config_error(hub, monkeypatch):
    from registry.errors import ConfigError

    monkeypatch.setenv("CAIRN_OFFLINE", "maybe")
    with pytest.raises(ConfigError, match="CAIRN_OFFLINE='maybe'"):
        zoo.create(NAME, num_classes=4)
    monkeypatch.setenv("CAIRN_OFFLINE", "0")
    assert zoo.create(NAME, num_classes=4).cairn_info.provenance.source == "hf-hub"


@pytest.mark.parametrize("sidecar", ["{not json", '{"sha256": "short"}', "[]"])
def test_a_damaged_sidecar_is_recomputed_not_trusted(tmp_path, weights, sidecar):
    import hashlib

    path = tmp_path / "w.safetensors"
    path.write_bytes(weights)
    (tmp_path / "w.safetensors.cairn.json").write_text(sidecar)
    prov = zoo.WeightsProvenance.of_file(path)
    assert prov.sha256 == hashlib.sha256(weights).hexdigest()
    path.write_bytes(weights[:-1] + b"\0")  # changed after the sidecar was written
    assert zoo.WeightsProvenance.of_file(path).sha256 != prov.sha256
