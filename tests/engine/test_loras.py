"""User LoRAs on tiny weights: built by the project, listed by id, applied for one request only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import read_frames
from ltx_runtime.engine import Engine
from ltx_runtime.loras import LoraEntry, LoraListError, read_loras
from ltx_runtime.request import GenerationRequest, RequestError
from ltx_runtime.tiny import build_tiny_lora

FAST_23, GUIDED_23 = "ltx-runtime:tiny-ltx23-fast@1", "ltx-runtime:tiny-ltx23@1"


@pytest.fixture(scope="module")
def lora_engine(tiny_root):
    """An engine on the session's tiny weights whose loras/ folder holds two LTX-2.3 LoRAs and one LTX-2 LoRA."""
    folder = tiny_root / "loras"
    build_tiny_lora(tiny_root / "ltx-2.3", folder / "style-a.safetensors", seed=1)
    build_tiny_lora(tiny_root / "ltx-2.3", folder / "style-b.safetensors", seed=2)
    build_tiny_lora(tiny_root / "ltx-2", folder / "ltx2-style.safetensors", seed=3)
    (folder / "broken.safetensors").write_bytes(b"not a safetensors file")
    listed = {
        "style-a": {"file": "style-a.safetensors", "architecture": "ltx-2.3"},
        "style-b": {"file": "style-b.safetensors", "architecture": "ltx-2.3"},
        "ltx2-style": {"file": "ltx2-style.safetensors", "architecture": "ltx-2"},
        "broken": {"file": "broken.safetensors", "architecture": "ltx-2.3"},
        "missing": {"file": "missing.safetensors", "architecture": "ltx-2.3"},
    }
    loras = read_loras(None, json.dumps(listed))
    return Engine("tiny", tiny_folder=tiny_root, lock={}, x264_preset="ultrafast", loras=loras)


def clip(engine, tmp_path, name, model=FAST_23, **fields):
    request = GenerationRequest(model, "a cat over the ocean", 64, 64, 1, 9, False, seed=7, **fields)
    engine.generate(request, tmp_path / f"{name}.mp4")
    return read_frames(tmp_path / f"{name}.mp4")


@pytest.mark.parametrize("model, extra", [(FAST_23, {}), (GUIDED_23, {"steps": 2})], ids=["fast", "guided"])
def test_two_loras_back_to_back_then_none_on_one_worker(lora_engine, tmp_path, model, extra):
    """Each LoRA changes the clip and the two differ; the next request without a LoRA is the no-LoRA clip again,
    bit for bit (nothing leaks, the guided recipe's distilled LoRA included)."""
    plain = clip(lora_engine, tmp_path, "plain", model, **extra)
    with_a = clip(lora_engine, tmp_path, "a", model, loras=(("style-a", 1.0),), **extra)
    with_b = clip(lora_engine, tmp_path, "b", model, loras=(("style-b", 0.7),), **extra)
    plain_again = clip(lora_engine, tmp_path, "again", model, **extra)
    assert not np.array_equal(with_a, plain) and not np.array_equal(with_b, plain)
    assert not np.array_equal(with_a, with_b)
    assert np.array_equal(plain_again, plain)


def test_a_lora_at_weight_zero_is_the_plain_clip_and_the_weight_matters(lora_engine, tmp_path):
    plain = clip(lora_engine, tmp_path, "plain")
    assert np.array_equal(clip(lora_engine, tmp_path, "zero", loras=(("style-a", 0.0),)), plain)
    half = clip(lora_engine, tmp_path, "half", loras=(("style-a", 0.5),))
    full = clip(lora_engine, tmp_path, "full", loras=(("style-a", 1.0),))
    assert not np.array_equal(half, full)


@pytest.mark.parametrize(
    "loras, model, words",
    [
        ((("nobody", 1.0),), FAST_23, "unknown LoRA 'nobody'"),
        ((("ltx2-style", 1.0),), FAST_23, "is for ltx-2 models"),
        ((("broken", 1.0),), FAST_23, "cannot be loaded"),
        ((("style-a", 4.5),), FAST_23, "the weight must be from -4 to 4"),
        ((("style-a", 1.0),), "ltx-runtime:tiny@1", "takes no LoRAs"),
        (tuple((f"x{i}", 1.0) for i in range(5)), FAST_23, "at most 4 LoRAs"),
    ],
)
def test_bad_loras_are_request_errors_and_the_engine_goes_on(lora_engine, tmp_path, loras, model, words):
    with pytest.raises(RequestError) as raised:
        clip(lora_engine, tmp_path, "bad", model, loras=loras)
    assert raised.value.parameter == "lora" and words in str(raised.value)
    assert not (tmp_path / "bad.mp4").exists()
    clip(lora_engine, tmp_path, "after")  # still works


def test_a_listed_lora_whose_file_is_missing_says_so(lora_engine, tmp_path):
    from ltx_runtime.weights import WeightsError

    with pytest.raises(WeightsError, match="missing.safetensors"):
        clip(lora_engine, tmp_path, "missing", loras=(("missing", 1.0),))


def test_the_lora_list_from_the_lock_and_the_settings(tmp_path):
    lock = tmp_path / "weights.lock"
    lock.write_text(json.dumps({"format": 1, "models": {}, "loras": {
        "a": {"file": "a.safetensors", "architecture": "ltx-2.3"}, "b": {"file": "b.safetensors", "architecture": "ltx-2"}}}))
    listed = read_loras(lock, json.dumps({"b": {"file": "b2.safetensors", "architecture": "ltx-2.3"}}))
    assert listed == {"a": LoraEntry("a", "a.safetensors", "ltx-2.3"), "b": LoraEntry("b", "b2.safetensors", "ltx-2.3")}
    for bad in ({"x": {"file": "../x.safetensors", "architecture": "ltx-2.3"}}, {"x": {"file": "x.safetensors"}},
                {"x": {"file": "x.bin", "architecture": "ltx-2"}}, ["x"]):  # fmt: skip
        with pytest.raises(LoraListError):
            read_loras(None, json.dumps(bad))
    with pytest.raises(LoraListError):
        read_loras(None, "{not json")
