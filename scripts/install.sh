#!/usr/bin/env bash
# Create .venv and install ltx-runtime into it. `scripts/install.sh --test` adds the test tools.
# torch to fit the machine: with an NVIDIA GPU (nvidia-smi sees one) the CUDA build from PyPI; without one the CPU
# build 2.13.0 from PyTorch's CPU package index (a ~200 MB download instead of gigabytes of CUDA libraries), or from
# PyPI when that index cannot be reached (as on this project's build machines, which have the CPU wheel on disk).
# pip's own output goes to .venv/install.log; it is shown when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"
log=.venv/install.log

step() { printf '==> %s\n' "$*"; }
pip_install() {  # pip, with its output in the log; on failure the end of the log, then exit
    local started=$SECONDS
    if ! .venv/bin/python -m pip install --progress-bar off "$@" >>"$log" 2>&1; then
        echo "pip failed; the end of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    echo "    done in $((SECONDS - started)) s"
}

step "creating the virtual environment .venv ($(python3 --version))"
python3 -m venv .venv
: >"$log"
step "upgrading pip"
pip_install --upgrade pip

if .venv/bin/python -c "import torch" 2>/dev/null; then
    step "torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') is already installed"
elif command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
    step "NVIDIA GPU found ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)): installing the CUDA build of torch from PyPI (several GB)"
    pip_install "torch>=2.4"
elif .venv/bin/python -c "import urllib.request; urllib.request.urlopen('$TORCH_CPU_INDEX/torch/', timeout=5)" 2>/dev/null; then
    step "no NVIDIA GPU: installing the CPU build of torch $TORCH_VERSION from $TORCH_CPU_INDEX"
    pip_install --index-url "$TORCH_CPU_INDEX" --timeout 20 --retries 0 "torch==$TORCH_VERSION"
else
    step "no NVIDIA GPU, and $TORCH_CPU_INDEX cannot be reached: installing torch==$TORCH_VERSION from the configured package index"
    pip_install "torch==$TORCH_VERSION"
fi

step "installing ltx-runtime${extras:+ with the test tools} and its dependencies (diffusers, transformers, FastAPI, ...)"
pip_install -e ".${extras}"

if [[ -n "$extras" ]]; then
    # The parity tests' oracle: Lightricks' ltx-core / ltx-pipelines 1.0.0 in their own venv (they need transformers
    # 4.57, the project transformers 5). --no-deps, then only what they import, so that pip never pulls another torch.
    step "creating .venv-oracle: Lightricks' ltx-core and ltx-pipelines 1.0.0, the parity tests' reference"
    python3 -m venv .venv-oracle
    oracle_pip() { .venv-oracle/bin/python -m pip install --progress-bar off "$@" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }; }
    oracle_pip --upgrade pip
    oracle_pip "torch==$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')"
    oracle_pip --no-deps ltx-core==1.0.0 ltx-pipelines==1.0.0
    oracle_pip einops numpy "transformers~=4.57.0" "huggingface_hub~=0.36.0" "tokenizers~=0.22.0" safetensors \
        accelerate "scipy>=1.14" av tqdm pillow
    # ltx-core's audio-to-video needs torchaudio's MelSpectrogram and resample. No torchaudio is built for torch 2.13
    # (PyPI's last is 2.11.1); 2.11.1's compiled ops do not load against 2.13, so they are removed: torchaudio then
    # loads its pure-torch part (its loader skips a missing library), which holds both.
    oracle_pip --no-deps torchaudio==2.11.1
    rm -f .venv-oracle/lib/python*/site-packages/torchaudio/lib/*.so
    # The current Runware SDK shares the import name `runware` with the legacy one in .venv: it gets a folder of its
    # own, which the client-matrix tests put on a subprocess's PYTHONPATH (tests/e2e/clients/).
    step "installing runware-sdk 1.8.0 into .test-clients/ (the client-matrix tests)"
    pip_install --upgrade --target .test-clients/runware-sdk-1.8.0 "runware-sdk==1.8.0"

    # The playground's browser tests drive Debian's Chromium through Playwright (tests/e2e/test_playground.py); Playwright's
    # own browser download (`playwright install`) is never used.
    if [[ ! -x /usr/bin/chromium ]]; then
        step "installing Debian's chromium (the playground's browser tests)"
        as_root=""
        [[ "$(id -u)" -ne 0 ]] && as_root="sudo"
        $as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium
    fi

    # The task store tests run every case on a real PostgreSQL server too, started by the tests in a temp folder
    # (tests/support/postgres_harness.py); Debian's package brings initdb and pg_ctl.
    if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
        step "installing Debian's postgresql (the task store tests on Postgres)"
        as_root=""
        [[ "$(id -u)" -ne 0 ]] && as_root="sudo"
        $as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq postgresql
    fi
fi
echo "installed: $(.venv/bin/ltx-runtime --help >/dev/null && echo ltx-runtime) with torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'); pip's output is in $log"
