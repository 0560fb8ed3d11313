"""The LTX_* variables the library, its command line and the server read count when they are set after the modules
were imported: the library reads them when called, the CLI when it parses its options, the server in its Settings."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ltx_runtime.admission import HOME_TINY_FOLDER, SAFETY_CHECKER, default_tiny_folder
from ltx_runtime.cli import app
from ltx_runtime.loras import REPOSITORY_LOCK_PATH, default_lock_path
from ltx_runtime.weights import LOCK_FORMAT, read_lock

from server.media.store import open_media
from server.settings import Settings
from server.store import open_store
from server.tasks.service import TaskService

LORA = {"file": "style.safetensors", "architecture": "ltx-2.3"}


def write_lock(path, loras=None) -> None:
    entry = {"folder": "elsewhere", "complete": True, "sources": []}
    path.write_text(json.dumps({"format": LOCK_FORMAT, "models": {"lightricks:2@1": entry}, "loras": loras or {}}))


def test_the_library_reads_its_variables_when_called(tmp_path, monkeypatch):
    monkeypatch.delenv("LTX_TINY_DIR", raising=False)
    monkeypatch.delenv("LTX_WEIGHTS_LOCK", raising=False)
    assert (default_tiny_folder(), default_lock_path()) == (HOME_TINY_FOLDER, REPOSITORY_LOCK_PATH)
    lock = tmp_path / "other.lock"
    write_lock(lock)
    monkeypatch.setenv("LTX_TINY_DIR", str(tmp_path / "tiny"))
    monkeypatch.setenv("LTX_WEIGHTS_LOCK", str(lock))
    assert default_tiny_folder() == tmp_path / "tiny"
    assert read_lock()["lightricks:2@1"].folder == "elsewhere"  # the default lock is the one named now


def test_the_cli_reads_the_weights_root_and_the_lock_as_it_parses(tmp_path):
    lock = tmp_path / "other.lock"
    write_lock(lock)
    environment = {"LTX_WEIGHTS_DIR": str(tmp_path / "weights"), "LTX_WEIGHTS_LOCK": str(lock)}
    verified = CliRunner().invoke(app, ["weights", "verify", "lightricks:2@1"], env=environment)
    assert verified.exit_code == 0, verified.output
    assert f"0 locked files in {tmp_path / 'weights' / 'elsewhere'}, all match" in verified.output
    missing = CliRunner().invoke(app, ["generate", "-p", "a cat", "-o", str(tmp_path / "clip.mp4")], env=environment)
    assert missing.exit_code == 1 and str(tmp_path / "weights") in missing.output  # checked before torch loads


def test_the_server_takes_the_tiny_folder_and_the_lock_from_its_settings(tmp_path, monkeypatch):
    """Settings read the variables; what the server does follows its settings, never the variables behind them."""
    read, given = tmp_path / "read.lock", tmp_path / "given.lock"
    write_lock(read, loras={"read": LORA})
    write_lock(given, loras={"given": LORA})
    monkeypatch.setenv("LTX_TINY_DIR", str(tmp_path / "tiny"))
    monkeypatch.setenv("LTX_WEIGHTS_LOCK", str(read))
    assert (Settings().tiny_dir, Settings().weights_lock) == (tmp_path / "tiny", read)
    settings = Settings(data_dir=tmp_path, demo=True, tiny_dir=tmp_path / "tiny-given", weights_lock=given)
    assert settings.safety_folder == tmp_path / "tiny-given" / SAFETY_CHECKER
    tasks = TaskService(settings, open_store(settings.store_url), open_media(settings))
    assert list(tasks.loras) == ["given"]  # the LoRAs requests may name, from the lock the settings name
