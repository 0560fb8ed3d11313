"""Dockerfile.cuda: linted by hadolint (no Docker engine runs here) and kept in step with pyproject.toml."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile.cuda").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def version_tuple(text):
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile.cuda")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cuda_pytorch_base_satisfies_the_torch_requirement():
    base = re.search(r"^FROM (\S+)", DOCKERFILE, re.M).group(1)
    match = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda(\d+\.\d+)-cudnn\d+-runtime", base)
    assert match, f"expected an official PyTorch CUDA runtime image, got {base}"
    torch_requirement = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    lower_bound = re.search(r">=\s*([\d.]+)", torch_requirement).group(1)
    assert version_tuple(match.group(1)) >= version_tuple(lower_bound)


def test_installs_the_project_with_what_pyproject_needs():
    copied = " ".join(re.findall(r"^COPY (.+)$", DOCKERFILE, re.M))
    assert "pyproject.toml" in copied and "ltx_runtime" in copied and "weights.lock" in copied
    assert PYPROJECT["project"]["readme"] in copied
    assert re.search(r"pip install (--no-cache-dir )?\.", DOCKERFILE)


def test_runs_the_entry_point_as_non_root_offline_with_weights_on_a_volume():
    script = next(iter(PYPROJECT["project"]["scripts"]))
    assert re.search(rf'^CMD \["{script}", "serve"', DOCKERFILE, re.M)
    assert re.search(r"^USER (?!root|0\b)\S+", DOCKERFILE, re.M)
    assert "HF_HUB_OFFLINE=1" in DOCKERFILE
    assert re.search(r'^VOLUME \[.*"/weights"', DOCKERFILE, re.M)
    assert "LTX_WEIGHTS_DIR=/weights" in DOCKERFILE
    # the installed package finds the lock through this variable
    workdir = re.search(r"^WORKDIR (\S+)", DOCKERFILE, re.M).group(1)
    assert f"LTX_WEIGHTS_LOCK={workdir}/weights.lock" in DOCKERFILE
    assert re.search(r"^HEALTHCHECK .*", DOCKERFILE, re.M) and "/health/live" in DOCKERFILE
