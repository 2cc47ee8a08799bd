#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# transformers' own common model tests (tests/test_transformers_common_*.py) come from the sdist of the installed
# transformers release on PyPI: fetch them once here, before the workers start, into a cache outside the repository
# (tests/transformers_common.py). Without PyPI they are skipped with that reason, except in CI, which must run them.
if ! python tests/transformers_common.py; then
    if [ -n "${CI:-}" ]; then
        echo "CI: could not fetch transformers' common tests from PyPI" >&2
        exit 1
    fi
    echo "transformers' common tests could not be fetched from PyPI: tests/test_transformers_common_*.py will skip" >&2
fi
# One pytest-xdist worker per core (PYTEST_WORKERS=0: one process); --dist loadfile keeps each test file, and its
# module-scoped trained models, on one worker.
python -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"
