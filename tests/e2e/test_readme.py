"""The README's examples, run as pasted against a server started as the README says, on a fresh home folder.

The code blocks marked `<!-- readme-test -->` run in order: `sh` blocks with bash, `python` blocks as scripts. What
the test changes, and nothing else: the port (a free one instead of 8000), HOME (a new, empty one, as on a new machine)
and PATH (`ltx-runtime` and `python` of the interpreter running the tests, as `. .venv/bin/activate` gives). The
block marked `<!-- readme-test: runware-sdk -->` runs in a virtual environment of its own (`runware-sdk` installs the
same module as `runware`). Then a task's whole life is read back from the server log by its taskUUID.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import probe
from support.server_harness import ServerProcess

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
BLOCK = re.compile(r"<!-- readme-test(?:: (?P<variant>[\w-]+))? -->\n```(?P<language>\w+)\n(?P<code>.*?)\n```", re.S)
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) (server|\S+/worker\d+-[0-9a-f]{8}) \S+: ")
STAGE_ORDER = ["text_encoding", "stage_1", "upsampling", "stage_2", "decoding", "encoding", "uploading"]


def blocks(variant: str | None = None) -> list[tuple[str, str]]:
    return [(match["language"], match["code"]) for match in BLOCK.finditer(README) if match["variant"] == variant]


@pytest.fixture(scope="module")
def new_user(tmp_path_factory):
    """A fresh home, a working folder, and the server started there as the README says (with the default x264
    preset and no key configured), timed from its start."""
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("work")
    bin_dir = tmp_path_factory.mktemp("bin")
    for name, command in (("ltx-runtime", f'"{sys.executable}" -m server'), ("python", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    started = time.perf_counter()
    server = ServerProcess(
        home / ".local" / "share" / "ltx-runtime", home / ".cache" / "ltx-runtime" / "tiny",
        HOME=str(home), LTX_API_KEYS="", LTX_X264_PRESET="veryfast",
    )  # fmt: skip
    env = {**server.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    server.start()
    yield server, work, env, started
    server.stop()


def run_block(language: str, code: str, server: ServerProcess, work: Path, env: dict, python: str = "python") -> str:
    code = code.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    if language == "sh":
        command = ["bash", "-eu", "-c", code]
    else:
        script = work / "example.py"
        script.write_text(code)
        command = [python, str(script)]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{command[0]} failed:\n{code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def test_the_readme_examples_run_as_pasted(new_user, say):
    server, work, env, started = new_user
    examples = blocks()
    assert [language for language, _ in examples] == ["sh", "sh", "python"], "the quick start, the CLI, the SDK"

    curl_example, cli_example, sdk_example = examples
    run_block(*curl_example, server, work, env)
    first_video = time.perf_counter() - started
    # Reported, not asserted: a timing depends on the machine's load (docs/measurements.md has the figures).
    say(f"first video {first_video:.1f} s after the server was started (tiny weights built on the way)")
    info = probe(work / "first.mp4")
    assert (info.video_codec, info.width, info.height, info.frames, info.fps) == ("h264", 256, 144, 50, 25)
    assert (info.audio_codec, info.audio_channels) == ("aac", 2)  # the first video has sound, as promised up top
    assert sorted(path.name for path in work.iterdir()) == ["first.mp4"]  # the reply went to a temp file

    cli_output = run_block(*cli_example, server, work, env)
    clip = probe(work / "clip.mp4")
    assert (clip.width, clip.frames, clip.audio_codec) == (256, 50, "aac")
    assert "24000 Hz stereo audio" in cli_output
    # The CLI used the tiny weights the server built: one copy, in ~/.cache/ltx-runtime/tiny.
    home = Path(env["HOME"])
    assert (home / ".cache" / "ltx-runtime" / "tiny" / "ltx-2").is_dir()
    assert not list(home.glob(".local/share/ltx-runtime/tiny*"))

    video_url = run_block(*sdk_example, server, work, env).strip()
    assert re.fullmatch(rf"http://127\.0\.0\.1:{server.port}/media/[0-9a-f-]{{36}}\.mp4", video_url)


def test_a_tasks_whole_life_is_in_the_log(new_user):
    server, work, _, _ = new_user
    log = server.log()
    task_uuid = re.search(r"task accepted taskUUID=([0-9a-f-]{36})", log).group(1)  # the curl example's, the first
    lines = [line for line in log.splitlines() if task_uuid in line]
    events = [re.search(r"ltx_runtime\.tasks: task (\w+)", line).group(1) for line in lines]
    assert events == ["accepted", "started", *["progress"] * len(STAGE_ORDER), "result", "finished"], lines
    assert [re.search(r" stage=(\w+)", line).group(1) for line in lines if " task progress " in line] == STAGE_ORDER
    accepted, started, *_, result, finished = lines
    assert " server " in accepted and re.search(r"/worker\d", started)  # both processes, one format
    for line in (accepted, started, finished):
        assert re.search(r" key=[0-9a-f]{16} model=ltx-runtime:tiny@1 size=256x144 duration=2 fps=25 ", line), line
    assert re.search(r" seconds=[\d.]+ ", finished) and re.search(r" bytes=\d+ ", result)

    # Every line of the log in one format (the demo banner's lines continue its message).
    record_lines = [line for line in log.splitlines() if not line.startswith(("!!!", "DEMO MODE"))]
    assert all(LOG_LINE.match(line) for line in record_lines), [l for l in record_lines if not LOG_LINE.match(l)]
    key = (Path(server.env["HOME"]) / ".local" / "share" / "ltx-runtime" / "api_key").read_text().strip()
    assert log.count(key) == 1  # printed once, at first start; never in a task line
    assert '"POST /v1' not in log  # no access log by default
    assert not re.search(r"it/s|Writing model shards|\d+%\|", log)  # no progress bars


def test_the_second_terminal_is_told_to_activate_the_environment():
    second_terminal = README.split("In a second terminal", 1)[1]
    assert second_terminal.index(". .venv/bin/activate") < second_terminal.index("ltx-runtime generate")


def test_the_weights_table_follows_weights_lock():
    """Each model's row names its folder and every source repository of weights.lock, with its pinned short commit or
    "no pinned commit", and no repository the lock does not name."""
    rows = {match[1]: match[0] for match in re.finditer(r"^\| `([^`]+)` \| `[^`]+` \|.*$", README, re.M)
            if "known here" not in match[0]}  # fmt: skip
    lock = json.loads((Path(__file__).resolve().parents[2] / "weights.lock").read_text())["models"]
    assert set(lock) <= set(rows)
    for model_id, entry in lock.items():
        row = rows[model_id]
        assert f"`{entry['folder']}`" in row, row
        for source in entry["sources"]:
            assert f"`{source['repo']}`" in row, (model_id, source["repo"])
            revision = source["revision"]
            assert (revision is None and "no pinned commit" in row) or (revision and f"`{revision[:7]}`" in row), row
        named = set(re.findall(r"`([\w.-]+/[\w.-]+)`", row))
        assert named <= {source["repo"] for source in entry["sources"]}, (model_id, named)


def test_only_files_in_the_repository_are_cited():
    root = Path(__file__).resolve().parents[2]
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        assert "shared/docs" not in path.read_text(), path  # a private folder; the facts carry their public sources


def test_the_two_set_up_commands_come_first():
    """Before any use: the command that installs and serves on the defaults, then the one that runs the tests."""
    serve, tests = README.index("ltx-runtime serve --demo"), README.index("bash scripts/test.sh")
    assert README.index("scripts/install.sh") < serve < tests < README.index("## Quick start")


def test_the_files_the_docs_name_exist():
    """Every path under tests/, scripts/ and docs/ that the README and docs name is in the repository."""
    root = Path(__file__).resolve().parents[2]
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for named in re.findall(r"\b((?:tests|scripts|docs)/[\w/.-]+\.(?:py|sh|md))\b", path.read_text()):
            assert (root / named).is_file(), (path.name, named)


@pytest.mark.slow
def test_the_runware_sdk_example(new_user, tmp_path, say):
    server, work, env, _ = new_user
    (example,) = blocks("runware-sdk")
    say("installing runware-sdk 1.8.0 into a virtual environment of its own (needs PyPI)")
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    pip = subprocess.run([python, "-m", "pip", "install", "runware-sdk==1.8.0"], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    video_url = run_block(*example, server, work, env, python=python).strip()
    assert re.fullmatch(rf"http://127\.0\.0\.1:{server.port}/media/[0-9a-f-]{{36}}\.mp4", video_url)


def test_ctrl_c_stops_the_server_and_its_worker_cleanly(new_user):
    """Last in this module: Ctrl-C reaches the whole process group, server and worker."""
    server, *_ = new_user
    os.killpg(server.process.pid, signal.SIGINT)
    assert server.process.wait(30) == 0
    tail = server.log().split("Shutting down", 1)[1]
    assert "Application shutdown complete" in tail
    assert not re.search(r"Traceback|KeyboardInterrupt|leaked semaphore|resource_tracker|WARNING|ERROR", tail), tail
