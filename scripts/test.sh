#!/usr/bin/env bash
# The README's test command: set up the machine (idempotent), then run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m pytest "$@"
