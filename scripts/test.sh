#!/usr/bin/env bash
# Install everything the tests need into .venv, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
echo "==> running the tests: pytest $* (the whole suite takes about half an hour on 2 busy cores; -m 'not slow' is the quick layer)"
exec .venv/bin/python -m pytest "$@"
