"""Requests are validated without the inference stack: the request module and the server's validation import no
torch, and admitting a clip by its memory estimate builds no model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules_after(code: str) -> dict:
    """Run `code` in a fresh interpreter; its last line prints a JSON value, returned here."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_validating_a_request_imports_no_torch():
    result = modules_after(
        "import json, sys\n"
        "from ltx_runtime.request import MAX_SEED, GenerationRequest, RequestError, validate_request\n"
        "import server.api.runware.validation\n"
        "spec = validate_request(GenerationRequest(model='lightricks:2@1', prompt='a cat', width=1920, height=1080,"
        " duration=6, fps=25, audio=True, seed=MAX_SEED))\n"
        "try:\n"
        "    validate_request(GenerationRequest(model='lightricks:2@1', prompt='a cat', width=1280, height=720,"
        " duration=6, fps=25, audio=True))\n"
        "    parameter = None\n"
        "except RequestError as error:\n"
        "    parameter = error.parameter\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'spec': spec.id, 'refused': parameter}))\n"
    )
    assert result == {"torch": False, "spec": "lightricks:2@1", "refused": "width"}


def test_admission_control_builds_no_model():
    """The memory estimate reads the catalog's parameter counts: no meta model is built to admit a clip."""
    result = modules_after(
        "import json, sys, time\n"
        "from ltx_runtime.catalog import get_model\n"
        "from ltx_runtime.geometry import plan_generation\n"
        "from ltx_runtime.admission import GIB, MemoryLimitError, MemoryProfile, check_memory\n"
        "started = time.perf_counter()\n"
        "plan = plan_generation(3840, 2160, 10, 50, 24000)\n"
        "try:\n"
        "    check_memory(get_model('lightricks:2@1'), plan, MemoryProfile.LOW, 24 * GIB)\n"
        "    refused = False\n"
        "except MemoryLimitError:\n"
        "    refused = True\n"
        "print(json.dumps({'refused': refused, 'seconds': time.perf_counter() - started,"
        " 'built': 'ltx_runtime.fullsize' in sys.modules or 'transformers.models.gemma3' in sys.modules}))\n"
    )
    assert result["refused"] and not result["built"] and result["seconds"] < 1.0


def test_keyframe_positions_are_checked_against_the_clip_once_its_length_is_known():
    from ltx_runtime.request import LAST, Keyframe, keyframes_problem, max_keyframes, resolve_keyframes

    assert [max_keyframes(frames) for frames in (8, 9, 17, 150)] == [2, 2, 3, 20]  # one per latent frame
    assert keyframes_problem([0, LAST, 60], 150) is None
    assert keyframes_problem([0, LAST, 999], None) is None  # the duration head has not picked the length yet
    assert "two images" in keyframes_problem([LAST, LAST], None)
    assert "past the clip's last frame (149" in keyframes_problem([150], 150)
    assert "at most 20" in keyframes_problem(list(range(21)), 150)
    assert [k.frame for k in resolve_keyframes((Keyframe(b"a", 0), Keyframe(b"b", LAST)), 150)] == [0, 149]
