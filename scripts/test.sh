#!/usr/bin/env bash
# Install everything the tests need into .venv, run the whole suite, then the quick server layer again on Postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
# Four pytest-xdist workers, each test file on one of them (its module-scoped server started once): the end-to-end
# layer mostly waits on servers and clips, so four keep two cores busy. Arguments come after, so -n 0 runs serially.
PARALLEL=(-n 4 --dist loadfile)
echo "==> running the tests: pytest ${PARALLEL[*]} $* (the whole suite; README, Tests: each layer alone and its time)"
.venv/bin/python -m pytest "${PARALLEL[@]}" --durations=40 "$@"  # the 40 slowest tests listed at the end
# The store contract suite (tests/contract/test_store.py) runs on both backends above; here every quick server test
# runs once more with each test server on a fresh Postgres database (LTX_TEST_STORE=postgres,
# tests/support/postgres_harness.py).
echo "==> the quick server tests again on the Postgres task store: LTX_TEST_STORE=postgres pytest ${PARALLEL[*]} -m 'not slow' tests/e2e/test_server*.py"
LTX_TEST_STORE=postgres exec .venv/bin/python -m pytest "${PARALLEL[@]}" -m "not slow" tests/e2e/test_server*.py
