#!/usr/bin/env bash
# Install everything the tests need into .venv, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
echo "==> running the tests: pytest $* (the whole suite: about 26 minutes on 2 busy cores; -m 'not slow' is the 4-minute quick layer)"
exec .venv/bin/python -m pytest "$@"
