#!/usr/bin/env bash
# The whole test suite (and the linter), after installing what the project needs.
source "$(dirname "$0")/setup_env.sh"
ruff check talkingjax experiments tests benchmarks
# Two workers, one per core of the CI machine: most of a test's time is XLA compilation, which is
# single-threaded. Whole files go to one worker (their module fixtures are built once).
python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile tests "$@"
