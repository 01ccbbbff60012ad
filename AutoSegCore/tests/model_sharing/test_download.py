"""``autoseg download_pretrained_model_by_url``: served over a local HTTP server, installed with every check."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from model_sharing_helpers import DATASET_NAME, MODEL, make_results, set_workspace_env

from autoseg.cli.main import main as autoseg_main
from autoseg.errors import ModelSharingError
from autoseg.model_sharing.download import download_and_install
from autoseg.model_sharing.export_zip import ExportRequest, export_model_to_zip
from autoseg.model_sharing.safe_extract import ExtractionLimits
from autoseg.paths import Workspace


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL of a local HTTP server, the folder it serves holding model.zip and broken.zip)."""
    root = tmp_path_factory.mktemp("served")
    workspace = Workspace.from_root(root / "ws")
    make_results(workspace)
    export_model_to_zip(workspace, root / "site" / "model.zip",
                        ExportRequest(dataset="777", configurations=("3d_fullres",), folds=(0,)), log=lambda _: None)
    (root / "site" / "broken.zip").write_bytes(b"this is not a zip archive")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root / "site"))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root / "site"
    server.shutdown()


def test_download_installs_the_model_and_leaves_no_temporary_file(served, tmp_path, monkeypatch):
    url, site = served
    target = Workspace.from_root(tmp_path / "fresh")
    set_workspace_env(monkeypatch, target)
    assert autoseg_main(["download_pretrained_model_by_url", f"{url}/model.zip"]) == 0
    installed = target.results / DATASET_NAME / MODEL
    assert (installed / "fold_0" / "checkpoint_final.pth").is_file()
    assert sorted(p.name for p in target.results.iterdir()) == [DATASET_NAME]


def test_download_errors_are_one_clear_message(served, tmp_path, monkeypatch, capsys):
    url, _ = served
    target = Workspace.from_root(tmp_path / "fresh")
    set_workspace_env(monkeypatch, target)
    assert autoseg_main(["download_pretrained_model_by_url", f"{url}/missing.zip"]) == 1
    assert "Cannot download" in capsys.readouterr().err
    assert autoseg_main(["download_pretrained_model_by_url", f"{url}/broken.zip"]) == 1
    assert "not a readable zip archive" in capsys.readouterr().err
    assert autoseg_main(["download_pretrained_model_by_url", "ftp://example.org/model.zip"]) == 1
    assert "only http(s):// and file://" in capsys.readouterr().err
    assert [p.name for p in target.results.iterdir()] == []  # nothing left behind


def test_download_stops_at_the_size_limit(served, tmp_path):
    url, site = served
    size = (site / "model.zip").stat().st_size
    with pytest.raises(ModelSharingError, match="limit"):
        download_and_install(
            f"{url}/model.zip", tmp_path / "results", limits=ExtractionLimits(max_total_bytes=size - 1)
        )
    assert list((tmp_path / "results").iterdir()) == []


def test_file_url(served, tmp_path):
    _, site = served
    result = download_and_install(Path(site / "model.zip").as_uri(), tmp_path / "results", log=lambda _: None)
    assert result.models and all(p.is_dir() for p in result.models)
