#!/usr/bin/env bash
# Fill bench/gpu/carry (git-ignored) for bench/gpu/run.sh: the wheels the GPU machine lacks, MiniLM in half
# precision, TOFU's forget10; checks that the wheels resolve for cp312 and prints the size (bench/gpu/pack.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHONPATH="$PWD" exec .venv/bin/python -m bench.gpu.pack "$@"
