"""`ltx-runtime weights lock | pull | verify`, run as a user runs them, against a fake Hugging Face Hub.

The fake hub is a real HTTP server on a loopback port that answers what huggingface_hub asks: model_info
(GET /api/models/{repo}/revision/{revision}?blobs=True) and hf_hub_download (HEAD and GET, with Range, on
/{repo}/resolve/{revision}/{path}). It sends no Xet headers, so hf_hub_download takes its plain HTTP path.
"""

import hashlib
import json
import os
import random
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from ltx_runtime.weights import read_lock

CLI = [sys.executable, "-m", "ltx_runtime"]
MODEL = "test:tiny@1"
FOLDER = "tiny-model"
PIPELINE, LORA, GATED = "acme/pipeline", "acme/lora", "acme/gated"
VAE, TRANSFORMER = "vae/diffusion_pytorch_model.safetensors", "transformer/diffusion_pytorch_model.safetensors"


def blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeRepo:
    def __init__(self, repo_id: str, files: dict[str, bytes], lfs: set[str], gated: bool = False):
        self.commit = hashlib.sha1(repo_id.encode()).hexdigest()
        self.files, self.lfs, self.gated = files, lfs, gated


class FakeHub:
    def __init__(self):
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.cut_once: dict[tuple[str, str], int] = {}  # (repo, path) -> the byte where its next full GET stops

    def add(self, repo_id: str, files: dict[str, bytes], lfs: set[str], gated: bool = False) -> None:
        self.repos[repo_id] = FakeRepo(repo_id, files, lfs, gated)

    def file_requests(self, path: str) -> list[tuple[str, str | None]]:
        return [(method, byte_range) for method, url, byte_range in self.requests if url.endswith("/" + path)]

    def handle(self, request: BaseHTTPRequestHandler, send_body: bool) -> None:
        path = unquote(urlsplit(request.path).path)
        self.requests.append((request.command, path, request.headers.get("Range")))
        if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path):
            repo = self._repo(request, match[1], match[2], send_body)
            if repo is not None:
                self._model_info(request, match[1], repo, send_body)
        elif match := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            repo = self._repo(request, match[1], match[2], send_body)
            if repo is not None:
                self._resolve(request, match[1], repo, match[3], send_body)
        else:
            _send(request, 404, {}, b"not found", send_body)

    def _repo(self, request, repo_id: str, revision: str, send_body: bool) -> FakeRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            _error(request, 401, "RepoNotFound", "Repository not found", send_body)
        elif repo.gated:
            _error(request, 403, "GatedRepo", f"Access to model {repo_id} is restricted.", send_body)
        elif revision not in (repo.commit, "main"):
            _error(request, 404, "RevisionNotFound", "Invalid rev id", send_body)
        else:
            return repo
        return None

    @staticmethod
    def _model_info(request, repo_id: str, repo: FakeRepo, send_body: bool) -> None:
        siblings = []
        for name, data in repo.files.items():
            sibling = {"rfilename": name, "size": len(data), "blobId": hashlib.sha1(data).hexdigest()}
            if name in repo.lfs:
                sibling["lfs"] = {"size": len(data), "sha256": sha256(data), "pointerSize": 134}
            siblings.append(sibling)
        body = json.dumps({"id": repo_id, "sha": repo.commit, "siblings": siblings}).encode()
        _send(request, 200, {"Content-Type": "application/json"}, body, send_body)

    def _resolve(self, request, repo_id: str, repo: FakeRepo, name: str, send_body: bool) -> None:
        if name not in repo.files:
            _error(request, 404, "EntryNotFound", f"{name} does not exist", send_body)
            return
        data = repo.files[name]
        etag = sha256(data) if name in repo.lfs else hashlib.sha1(data).hexdigest()
        headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        byte_range = request.headers.get("Range")
        start = int(re.fullmatch(r"bytes=(\d+)-", byte_range)[1]) if byte_range else 0
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if send_body and not start and (repo_id, name) in self.cut_once:
            cut = self.cut_once.pop((repo_id, name))
            request.send_response(200)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                request.send_header(key, value)
            request.end_headers()
            request.wfile.write(data[:cut])  # then the connection closes under the client
            request.close_connection = True
            return
        _send(request, 206 if start else 200, headers, data[start:], send_body)


def _send(request, status: int, headers: dict[str, str], body: bytes, send_body: bool) -> None:
    request.send_response(status)
    for key, value in {**headers, "Content-Length": str(len(body))}.items():
        request.send_header(key, value)
    request.end_headers()
    if send_body:
        request.wfile.write(body)


def _error(request, status: int, code: str, message: str, send_body: bool) -> None:
    body = json.dumps({"error": message}).encode()
    headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
    _send(request, status, headers, body, send_body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_HEAD(self):
        self.server.hub.handle(self, send_body=False)

    def do_GET(self):
        self.server.hub.handle(self, send_body=True)

    def log_message(self, *args):
        pass


FILES = {
    PIPELINE: {
        "model_index.json": b'{"_class_name": "LTX2Pipeline"}\n',
        "vae/config.json": b'{"_class_name": "AutoencoderKLLTX2Video"}\n',
        VAE: blob(1, 4096),
        TRANSFORMER: blob(2, 6000),
        "monolith.safetensors": blob(3, 5000),  # in the repo, not in the model's include patterns
        "README.md": b"# acme/pipeline\n",
    },
    LORA: {"lora.safetensors": blob(4, 3000), "README.md": b"# acme/lora\n"},
    GATED: {"model_index.json": b"{}\n"},
}


@pytest.fixture
def hub():
    hub = FakeHub()
    hub.add(PIPELINE, dict(FILES[PIPELINE]), lfs={VAE, TRANSFORMER, "monolith.safetensors"})
    hub.add(LORA, dict(FILES[LORA]), lfs={"lora.safetensors"})
    hub.add(GATED, dict(FILES[GATED]), lfs=set(), gated=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.hub = hub
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield hub
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(hub, tmp_path):
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING"))}
    environment.pop("TRANSFORMERS_OFFLINE", None)
    environment.pop("LTX_WEIGHTS_LOCK", None)
    environment.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
        LTX_WEIGHTS_DIR=str(tmp_path / "weights"),
    )
    return environment


@pytest.fixture
def lock(tmp_path) -> Path:
    """A lock as written by hand: sources and include patterns, no commit, no files yet."""
    path = tmp_path / "weights.lock"
    sources = [
        {"repo": PIPELINE, "revision": None, "include": ["model_index.json", "vae/*", "transformer/*"], "files": []},
        {"repo": LORA, "revision": None, "ref": "main", "into": "distilled_lora", "include": ["lora.safetensors"],
         "files": []},
    ]  # fmt: skip
    write(path, {"format": 1, "models": {MODEL: {"folder": FOLDER, "complete": False, "sources": sources}}})
    return path


@pytest.fixture
def locked(lock, env) -> Path:
    cli(["weights", "lock", MODEL, "--lock", str(lock)], env)
    return lock


@pytest.fixture
def pulled(locked, env) -> Path:
    """The model folder after a successful pull."""
    cli(["weights", "pull", MODEL, "--lock", str(locked)], env)
    return Path(env["LTX_WEIGHTS_DIR"]) / FOLDER


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def cli(args, env, code=0) -> subprocess.CompletedProcess:
    result = subprocess.run(CLI + args, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == code, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def lock_files(path: Path, source: int = 0) -> dict[str, dict]:
    return {item["path"]: item for item in json.loads(path.read_text())["models"][MODEL]["sources"][source]["files"]}


def test_lock_pins_the_commit_and_lists_the_included_files(locked, hub):
    entry = json.loads(locked.read_text())["models"][MODEL]
    assert entry["complete"] is True
    pipeline, lora = entry["sources"]
    assert pipeline["revision"] == hub.repos[PIPELINE].commit and lora["revision"] == hub.repos[LORA].commit
    assert list(pipeline) == ["repo", "revision", "include", "files"]  # key order kept
    files = lock_files(locked)
    assert sorted(files) == ["model_index.json", TRANSFORMER, "vae/config.json", VAE]  # no monolith, no README
    for path, item in files.items():
        assert item["size"] == len(FILES[PIPELINE][path])
    assert files[VAE]["sha256"] == sha256(FILES[PIPELINE][VAE])  # LFS files: the hub's sha256
    assert files["model_index.json"]["sha256"] is None  # the hub lists no sha256 for non-LFS files
    assert lock_files(locked, source=1)["lora.safetensors"]["sha256"] == sha256(FILES[LORA]["lora.safetensors"])
    assert lora["into"] == "distilled_lora"


def test_pull_downloads_the_locked_files_and_verify_passes(locked, env, hub):
    result = cli(["weights", "pull", MODEL, "--lock", str(locked)], env)
    folder = Path(env["LTX_WEIGHTS_DIR"]) / FOLDER
    for path in ("model_index.json", "vae/config.json", VAE, TRANSFORMER):
        assert (folder / path).read_bytes() == FILES[PIPELINE][path]
    assert (folder / "distilled_lora" / "lora.safetensors").read_bytes() == FILES[LORA]["lora.safetensors"]
    assert not (folder / "monolith.safetensors").exists() and not (folder / "README.md").exists()
    assert {item.local_path for item in read_lock(locked)[MODEL].files} == {
        "model_index.json", "vae/config.json", VAE, TRANSFORMER, "distilled_lora/lora.safetensors"
    }  # fmt: skip
    # The hashes the hub did not list are recorded on first use.
    assert lock_files(locked)["model_index.json"]["sha256"] == sha256(FILES[PIPELINE]["model_index.json"])
    assert "trust on first use" in result.stderr
    assert f"5 files in {folder}" in result.stdout

    verified = cli(["weights", "verify", MODEL, "--lock", str(locked)], env)
    assert verified.stdout.count(": ok") == 5 and "all match" in verified.stdout


def test_a_second_pull_downloads_nothing(pulled, locked, env, hub):
    hub.requests.clear()
    cli(["weights", "pull", MODEL, "--lock", str(locked)], env)
    assert not [url for _, url, _ in hub.requests if "/resolve/" in url]


def test_a_transfer_cut_off_mid_file_is_resumed(lock, env, hub):
    # huggingface_hub writes what it receives in 10 MiB chunks, so the cut comes after the first one.
    big = blob(5, 16 * 2**20)
    hub.repos[PIPELINE].files[TRANSFORMER] = big
    hub.cut_once[(PIPELINE, TRANSFORMER)] = 12 * 2**20
    cli(["weights", "lock", MODEL, "--lock", str(lock)], env)
    cli(["weights", "pull", MODEL, "--lock", str(lock)], env)
    gets = [byte_range for method, byte_range in hub.file_requests(TRANSFORMER) if method == "GET"]
    assert len(gets) == 2 and gets[0] is None
    start = int(re.fullmatch(r"bytes=(\d+)-", gets[1])[1])
    assert 0 < start <= 12 * 2**20  # the second request asked for the rest only
    assert (Path(env["LTX_WEIGHTS_DIR"]) / FOLDER / TRANSFORMER).read_bytes() == big


def test_a_corrupted_download_is_refused_and_deleted(locked, env, hub):
    good = FILES[PIPELINE][VAE]
    hub.repos[PIPELINE].files[VAE] = bytes([good[0] ^ 1]) + good[1:]  # the hub now serves other bytes
    result = cli(["weights", "pull", MODEL, "--lock", str(locked)], env, code=1)
    assert f"refused {VAE}" in result.stderr
    assert sha256(good) in result.stderr and sha256(hub.repos[PIPELINE].files[VAE]) in result.stderr
    root = Path(env["LTX_WEIGHTS_DIR"])
    assert not (root / FOLDER / VAE).exists()
    assert not list(root.rglob("*.incomplete"))
    assert lock_files(locked)[VAE]["sha256"] == sha256(good)  # the lock keeps what it pinned


def test_verify_reports_a_file_corrupted_on_disk_and_a_missing_one(pulled, locked, env):
    lora = pulled / "distilled_lora" / "lora.safetensors"
    data = lora.read_bytes()
    lora.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    (pulled / "vae" / "config.json").unlink()
    result = cli(["weights", "verify", MODEL, "--lock", str(locked)], env, code=1)
    assert f"distilled_lora/lora.safetensors: has sha256 {sha256(lora.read_bytes())}" in result.stdout
    assert "vae/config.json: missing" in result.stdout
    assert f"{TRANSFORMER}: ok" in result.stdout
    assert "2 problem(s)" in result.stdout


def test_verify_reports_files_the_lock_has_no_hash_for(pulled, locked, env):
    data = json.loads(locked.read_text())
    data["models"][MODEL]["sources"][0]["files"][0]["sha256"] = None
    write(locked, data)
    result = cli(["weights", "verify", MODEL, "--lock", str(locked)], env, code=1)
    assert "model_index.json: unverified (hash not in lock)" in result.stdout


def test_a_hash_recorded_on_first_use_is_checked_from_then_on(pulled, locked, env, hub, tmp_path):
    recorded = lock_files(locked)["model_index.json"]["sha256"]
    assert recorded == sha256(FILES[PIPELINE]["model_index.json"])
    changed = FILES[PIPELINE]["model_index.json"].replace(b"LTX2", b"WAN2")  # same size, other bytes
    hub.repos[PIPELINE].files["model_index.json"] = changed
    result = cli(
        ["weights", "pull", MODEL, "--lock", str(locked), "--weights", str(tmp_path / "elsewhere")], env, code=1
    )
    assert "refused model_index.json" in result.stderr and recorded in result.stderr
    assert not (tmp_path / "elsewhere" / FOLDER / "model_index.json").exists()


def test_lock_again_keeps_recorded_hashes_and_reports_changed_ones(pulled, locked, env):
    data = json.loads(locked.read_text())
    vae = next(item for item in data["models"][MODEL]["sources"][0]["files"] if item["path"] == VAE)
    vae["sha256"] = "0" * 64  # e.g. a hash copied from a mirror that turns out wrong
    write(locked, data)
    result = cli(["weights", "lock", MODEL, "--lock", str(locked)], env)
    assert f"{VAE}: sha256 was {'0' * 64} in the lock, is {sha256(FILES[PIPELINE][VAE])}" in result.stderr
    files = lock_files(locked)
    assert files[VAE]["sha256"] == sha256(FILES[PIPELINE][VAE])
    assert files["model_index.json"]["sha256"] == sha256(FILES[PIPELINE]["model_index.json"])  # kept: same commit


def test_a_gated_repository_names_the_page_where_to_accept_its_licence(env, hub, tmp_path):
    path = tmp_path / "gated.lock"
    source = {"repo": GATED, "revision": hub.repos[GATED].commit,
              "files": [{"path": "model_index.json", "size": 3, "sha256": None}]}  # fmt: skip
    write(path, {"format": 1, "models": {MODEL: {"folder": FOLDER, "complete": True, "sources": [source]}}})
    for command in ("pull", "lock"):
        result = cli(["weights", command, MODEL, "--lock", str(path)], env, code=1)
        assert f"accept its licence at {hub.endpoint}/{GATED}" in result.stderr
        assert "HF_TOKEN" in result.stderr and "no token is set" in result.stderr


@pytest.mark.parametrize(
    "repo, revision, message",
    [
        ("acme/nowhere", "a" * 40, "acme/nowhere not found on"),
        (PIPELINE, "b" * 40, f"{PIPELINE} has no revision {'b' * 40}"),
        (PIPELINE, None, f"{PIPELINE} has no file missing.json at"),
    ],
)
def test_hub_errors_are_one_clear_line(env, hub, tmp_path, repo, revision, message):
    path = tmp_path / "other.lock"
    source = {"repo": repo, "revision": revision or hub.repos[PIPELINE].commit,
              "files": [{"path": "missing.json", "size": None, "sha256": None}]}  # fmt: skip
    write(path, {"format": 1, "models": {MODEL: {"folder": FOLDER, "complete": True, "sources": [source]}}})
    result = cli(["weights", "pull", MODEL, "--lock", str(path)], env, code=1)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # the "[1/1] ..." progress line, then the error


def test_an_unreachable_hub_is_one_clear_line(lock, env):
    env = dict(env, HF_ENDPOINT="http://127.0.0.1:9")  # the discard port: nothing listens
    result = cli(["weights", "lock", MODEL, "--lock", str(lock)], env, code=1)
    assert "acme/pipeline at main" in result.stderr and "ConnectError" in result.stderr


def test_the_shipped_lock_says_why_an_entry_cannot_be_pulled_naming_each_repository_once():
    from ltx_runtime.hub import _require_pullable
    from ltx_runtime.weights import WeightsError

    with pytest.raises(WeightsError) as raised:
        _require_pullable(read_lock()["lightricks:2@1"])  # two files from Lightricks/LTX-2, both without a commit
    message = str(raised.value)
    assert message.count("Lightricks/LTX-2 has no pinned commit") == 1, message
    assert "google/gemma-3-12b-it-qat-q4_0-unquantized has no pinned commit" in message


def test_pull_refuses_an_entry_that_is_not_locked_yet(lock, env, hub):
    result = cli(["weights", "pull", MODEL, "--lock", str(lock)], env, code=1)
    assert "its file list is partial" in result.stderr and f"{PIPELINE} has no pinned commit" in result.stderr
    assert f"ltx-runtime weights lock {MODEL}" in result.stderr
    assert hub.requests == []


def test_pull_refuses_offline_mode(locked, env, hub):
    result = cli(["weights", "pull", MODEL, "--lock", str(locked)], dict(env, HF_HUB_OFFLINE="1"), code=1)
    assert "HF_HUB_OFFLINE is set" in result.stderr
    assert not [url for _, url, _ in hub.requests if "/resolve/" in url]


def test_lock_stops_on_a_pattern_that_matches_nothing(lock, env):
    data = json.loads(lock.read_text())
    data["models"][MODEL]["sources"][0]["include"].append("latent_upsampler/*")
    write(lock, data)
    before = lock.read_text()
    result = cli(["weights", "lock", MODEL, "--lock", str(lock)], env, code=1)
    assert f"'latent_upsampler/*' matches no file of {PIPELINE}" in result.stderr
    assert lock.read_text() == before


@pytest.mark.parametrize("command", ["pull", "verify", "lock"])
def test_an_unknown_model_id_is_a_usage_error(lock, env, command):
    result = cli(["weights", command, "lightricks:9@9", "--lock", str(lock)], env, code=2)
    assert f"no entry for lightricks:9@9 in {lock}; it has: {MODEL}" in result.stderr
