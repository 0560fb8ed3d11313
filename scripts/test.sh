#!/usr/bin/env bash
# Install everything the tests need into .venv, run the whole suite, then the quick server layer again on Postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
echo "==> running the tests: pytest $* (the whole suite; README, Tests: each layer alone and its time)"
.venv/bin/python -m pytest --durations=40 "$@"  # the 40 slowest tests listed at the end: where the time goes
# The store contract suite (tests/contract/test_store.py) runs on both backends above; here every quick server test
# runs once more with each test server on a fresh Postgres database (LTX_TEST_STORE=postgres,
# tests/support/postgres_harness.py).
echo "==> the quick server tests again on the Postgres task store: LTX_TEST_STORE=postgres pytest -m 'not slow' tests/e2e/test_server*.py"
LTX_TEST_STORE=postgres exec .venv/bin/python -m pytest -m "not slow" tests/e2e/test_server*.py
