"""GUARD_EMBEDDER_DEVICE: parsed and checked with the other settings, `cuda` refused at start where torch sees no CUDA
device, `auto` the CPU guard of before on a machine without a GPU; the in-process torch MiniLM (the GPU's model)
gives the ONNX model's vectors; the first stage is off beside a GPU unless it was asked for."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guard import app as app_module
from guard.app import create_app, first_stage
from guard.cli import main
from guard.errors import SettingsError
from guard.forget import devices
from guard.forget.devices import PROBES, TorchMiniLMEmbedder, cuda_available, local_embedder, resolve_device
from guard.forget.embedder import CachedEmbedder, Embedder, HashEmbedder
from guard.pipeline.cascade import SPACE
from guard.settings import Settings
from guard.testing import settings_for

TEXTS = [
    "Where was Jaime Vasquez born?",
    "The author's full name is Hsiao Yun-Hwa.",
    "Hello",
    "What is a good name for a golden retriever?",
    "word " * 400,  # truncated to the model's 256 tokens the same way
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith("GUARD_"):
            monkeypatch.delenv(key)


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cuda_available", lambda **_: False)


def test_the_setting_is_read_from_the_environment_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load().embedding.device == "auto"
    monkeypatch.setenv("GUARD_EMBEDDER_DEVICE", "cuda")
    assert Settings.load().embedding.device == "cuda"
    monkeypatch.setenv("GUARD_EMBEDDER_DEVICE", "gpu")
    with pytest.raises(SettingsError, match="GUARD_EMBEDDER_DEVICE: Input should be 'auto', 'cpu' or 'cuda'"):
        Settings.load()


@pytest.mark.parametrize(
    ("given", "other"),
    [
        ({"embedder_device": "cpu", "embedder_url": "http://e"}, "GUARD_EMBEDDER_URL"),
        ({"embedder_device": "cuda", "embedder": "minilm-int8"}, "GUARD_EMBEDDER"),
        ({"embedder_device": "auto", "embedder": "hash"}, "GUARD_EMBEDDER"),
    ],
)
def test_it_means_nothing_without_the_local_float_model(given: dict[str, str], other: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.load(**given)
    assert "GUARD_EMBEDDER_DEVICE is set but means nothing" in str(err.value) and other in str(err.value)
    Settings.load(embedder="minilm-torch", embedder_device="cpu")  # the float kinds take it


def test_cuda_without_a_cuda_device_stops_guard_serve_at_start(
    no_cuda: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GUARD_EMBEDDER_DEVICE", "cuda")
    assert main(["serve", "--index-dir", str(tmp_path / "idx")]) == 2
    assert "guard: GUARD_EMBEDDER_DEVICE=cuda, but" in capsys.readouterr().err
    assert not (tmp_path / "idx").exists()  # nothing was opened


def test_create_app_refuses_cuda_before_anything_starts_unless_its_embedder_is_given(
    no_cuda: None, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path / "idx", embedder_device="cuda")
    with pytest.raises(SettingsError, match="GUARD_EMBEDDER_DEVICE=cuda"):
        create_app(settings)
    create_app(settings, embedder=HashEmbedder())  # a test's embedder: the setting is not used


def test_this_machines_torch_says_why_cuda_is_refused() -> None:
    if cuda_available(probe_driver=False):
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(SettingsError, match=r"GUARD_EMBEDDER_DEVICE=cuda, but (torch .*|torch is not installed)"):
        resolve_device("cuda")


def test_auto_is_the_cpu_without_importing_torch_where_no_nvidia_driver_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    untouchable = types.ModuleType("torch")  # any use of torch would fail

    def __getattr__(name: str) -> Any:
        raise AssertionError(f"torch.{name} used")

    untouchable.__getattr__ = __getattr__  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "torch", untouchable)
    monkeypatch.setattr(devices, "NVIDIA_DRIVER", (str(tmp_path / "no-driver"),))
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"


def test_on_the_cpu_the_embedders_are_those_of_before() -> None:
    assert isinstance(local_embedder("hash", None, "cpu"), HashEmbedder)
    assert isinstance(local_embedder("hash", None, "cuda"), HashEmbedder)  # only the float MiniLM moves
    assert Embedder.device == "cpu" and CachedEmbedder(HashEmbedder()).device == "cpu"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    made: list[str] = []

    def fake(name: str, cache_dir: Path | None = None) -> Embedder:
        made.append(name)
        return HashEmbedder()

    monkeypatch.setattr(app_module, "make_embedder", fake)
    yield made


def test_the_first_stage_is_off_beside_a_gpu_unless_it_was_asked_for(tmp_path: Path, counted: list[str]) -> None:
    default = settings_for(tmp_path)
    assert first_stage(default, SPACE, "cuda") is None
    assert first_stage(default, SPACE) is not None and counted == ["minilm-fast"]  # the CPU's default
    asked = settings_for(tmp_path, first_stage="minilm-fast")
    assert first_stage(asked, SPACE, "cuda") is not None and counted == ["minilm-fast"] * 2


@pytest.fixture(scope="module")
def torch_cpu() -> TorchMiniLMEmbedder:
    return TorchMiniLMEmbedder("cpu")


@pytest.mark.model
def test_the_torch_model_gives_the_onnx_models_vectors(torch_cpu: TorchMiniLMEmbedder, minilm: Embedder) -> None:
    """The GPU's model is this one on another device: same space, cosine >= 0.999 (here ~1 - 1e-7) to the CPU's."""
    assert torch_cpu.space == minilm.space == "all-MiniLM-L6-v2" and torch_cpu.precision == "fp32"
    texts = [*TEXTS, *PROBES]
    ours = torch_cpu.embed(texts)
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    cosine = (ours * minilm.embed(texts)).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
    np.testing.assert_allclose(torch_cpu.embed(TEXTS[:1])[0], ours[0], atol=1e-5)  # padding changes nothing
    assert torch_cpu.embed([]).shape == (0, 384)


@pytest.mark.model
def test_half_precision_is_kept_only_while_the_probes_keep_their_cosine(
    torch_cpu: TorchMiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the GPU does at start, run on the CPU (torch computes in half precision there too)."""
    model, half = torch_cpu._halved(torch_cpu._model, check=True)
    assert half and torch_cpu.cosine >= devices.MIN_COSINE
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float16"
    monkeypatch.setattr(devices, "MIN_COSINE", 1.01)  # no half precision can keep this
    model, half = torch_cpu._halved(torch_cpu._model, check=True)
    assert not half and str(next(model.parameters()).dtype) == "torch.float32"
