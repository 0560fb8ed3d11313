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
if [[ -n "$extras" ]]; then
    # The current Runware SDK shares the import name `runware` with the legacy one in .venv: it gets a folder of its
    # own, which the client-matrix tests put on a subprocess's PYTHONPATH (tests/clients/).
    .venv/bin/pip install --quiet --upgrade --target .test-clients/runware-sdk-1.8.0 "runware-sdk==1.8.0"
fi
echo "installed: $(.venv/bin/ltx-runtime --help >/dev/null && echo ltx-runtime) torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
