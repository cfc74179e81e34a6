#!/usr/bin/env bash
# The whole test suite (and the linter), after installing what the project needs.
source "$(dirname "$0")/setup_env.sh"
ruff check talkingjax experiments tests benchmarks
python -m pytest tests "$@"
