#!/usr/bin/env bash
# Create .venv and install ltx-runtime into it. `scripts/install.sh --test` adds the test tools.
# torch: a CUDA build from PyPI when an NVIDIA GPU is visible, otherwise the CPU build 2.13.0
# (small, and already on disk on this project's build machines).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
        .venv/bin/pip install --quiet "torch>=2.4"
    else
        .venv/bin/pip install --quiet "torch==2.13.0"
    fi
fi
.venv/bin/pip install --quiet -e ".${extras}"

# The parity tests' oracle: Lightricks' ltx-core / ltx-pipelines 1.0.0 in their own venv (they need transformers 4.57,
# the project transformers 5). --no-deps, then only what they import, so that pip never pulls torchaudio or another
# torch (torchaudio is stubbed in the oracle process; tests/parity/oracle.py says why).
if [[ -n "$extras" ]]; then
    python3 -m venv .venv-oracle
    .venv-oracle/bin/python -m pip install --quiet --upgrade pip
    .venv-oracle/bin/pip install --quiet "torch==$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')"
    .venv-oracle/bin/pip install --quiet --no-deps ltx-core==1.0.0 ltx-pipelines==1.0.0
    .venv-oracle/bin/pip install --quiet einops numpy "transformers~=4.57.0" "huggingface_hub~=0.36.0" \
        "tokenizers~=0.22.0" safetensors accelerate "scipy>=1.14" av tqdm pillow

    # The current Runware SDK shares the import name `runware` with the legacy one in .venv: it gets a folder of its
    # own, which the client-matrix tests put on a subprocess's PYTHONPATH (tests/clients/).
    .venv/bin/pip install --quiet --upgrade --target .test-clients/runware-sdk-1.8.0 "runware-sdk==1.8.0"

    # The playground's browser tests drive Debian's Chromium through Playwright (tests/test_playground.py); Playwright's
    # own browser download (`playwright install`) is never used.
    if [[ ! -x /usr/bin/chromium ]]; then
        as_root=""
        [[ "$(id -u)" -ne 0 ]] && as_root="sudo"
        $as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium
    fi
fi
echo "installed: $(.venv/bin/ltx-runtime --help >/dev/null && echo ltx-runtime) torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
