"""Weights folders: the lock format, and a clear refusal for every kind of missing or mismatched folder."""

import json
import shutil

import pytest
import torch

from ltx_runtime.catalog import get_model
from ltx_runtime.engine import Engine
from ltx_runtime.request import GenerationRequest
from ltx_runtime.loras import LORA_FOLDER
from ltx_runtime.tiny import build_tiny_weights
from ltx_runtime.weights import (
    REQUIRED_COMPONENTS,
    WeightsError,
    check_folder,
    load_components,
    read_lock,
    resolve_folder,
)

FAST = get_model("lightricks:2@1")


def write_lock(path, model_id, files):
    path.write_text(json.dumps({"format": 1, "models": {model_id: {"folder": "x", "sources": [
        {"repo": "local/test", "revision": None, "files": files}]}}}))
    return read_lock(path)


def copy_of(tiny_weights, tmp_path):
    return shutil.copytree(tiny_weights, tmp_path / "copy")


def test_the_shipped_lock_parses_and_pins_ltx2_fast():
    lock = read_lock()
    entry = lock["lightricks:2@1"]
    assert entry.folder == FAST.weights
    assert not entry.complete  # hand-written from public pages; `weights lock` regenerates it
    repos = {source.repo for source in entry.sources}
    assert repos == {"Lightricks/LTX-2", "google/gemma-3-12b-it-qat-q4_0-unquantized"}  # Lightricks' own files
    distilled = next(item for item in entry.files if item.local_path == "checkpoints/ltx-2-19b-distilled.safetensors")
    assert (distilled.size, distilled.sha256) == (
        43333932124, "621cf9ed7c9b02798e139c536fcdca5c7ed6ca62cae75c805311bf65f1efdb43"
    )
    assert all(source.revision is None or len(source.revision) == 40 for source in entry.sources)


@pytest.mark.parametrize(
    "model_id, lora",
    [
        ("lightricks:2@0", "ltx-2-19b-distilled-lora-384.safetensors"),
        ("lightricks:ltx@2.3", "ltx-2.3-22b-distilled-lora-384-1.1.safetensors"),
    ],
)
def test_the_shipped_lock_places_each_guided_models_lora_in_its_folder(model_id, lora):
    entry = read_lock()[model_id]
    assert entry.folder == get_model(model_id).weights
    source = next(source for source in entry.sources if source.into == LORA_FOLDER)
    assert source.include == (lora,)
    assert [item.local_path for item in source.files] == [f"{LORA_FOLDER}/{lora}"]
    main = entry.sources[0]
    assert "transformer/*" in main.include and "text_encoder/*" in main.include and "latent_upsampler/*" in main.include


def test_a_source_into_a_subfolder_is_checked_there(tiny_weights, tmp_path):
    lora = next((tiny_weights / LORA_FOLDER).glob("*.safetensors"))
    path = tmp_path / "lock.json"
    source = {"repo": "local/test", "revision": None, "into": LORA_FOLDER,
              "files": [{"path": lora.name, "size": lora.stat().st_size, "sha256": None}]}  # fmt: skip
    path.write_text(json.dumps({"format": 1, "models": {FAST.id: {"folder": "x", "sources": [source]}}}))
    lock = read_lock(path)
    assert lock[FAST.id].files[0].local_path == f"{LORA_FOLDER}/{lora.name}"
    check_folder(tiny_weights, FAST, lock)
    folder = copy_of(tiny_weights, tmp_path)
    (folder / LORA_FOLDER / lora.name).rename(folder / lora.name)  # the right file, in the wrong place
    with pytest.raises(WeightsError, match=f"{LORA_FOLDER}/{lora.name} is missing"):
        check_folder(folder, FAST, lock)


def test_a_lock_path_outside_the_model_folder_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="'../elsewhere/x.json' is not a path inside a model folder"):
        write_lock(tmp_path / "lock.json", FAST.id, [{"path": "../elsewhere/x.json"}])


def test_tiny_weights_use_the_real_diffusers_layout(tiny_weights):
    index = json.loads((tiny_weights / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2Pipeline"
    for name in REQUIRED_COMPONENTS:
        assert any(path.suffix == ".json" for path in (tiny_weights / name).iterdir()), name
        if name not in ("scheduler", "tokenizer"):
            assert list((tiny_weights / name).glob("*.safetensors")), name
    assert (tiny_weights / "latent_upsampler" / "diffusion_pytorch_model.safetensors").is_file()
    size = sum(f.stat().st_size for f in tiny_weights.rglob("*") if f.is_file())
    assert size < 50e6


def test_tiny_weights_have_the_real_latent_geometry(tiny_weights):
    components = load_components(tiny_weights, FAST, torch.float32)
    pipe = components.pipeline
    assert (pipe.vae_spatial_compression_ratio, pipe.vae_temporal_compression_ratio) == (32, 8)
    assert pipe.audio_sampling_rate / pipe.audio_hop_length / pipe.audio_vae_temporal_compression_ratio == 25
    assert pipe.vocoder.config.output_sampling_rate == 24000
    assert pipe.vocoder.config.out_channels == 2
    assert components.latent_upsampler.config.in_channels == pipe.transformer.config.in_channels


def test_tiny_build_is_deterministic(tmp_path):
    first = build_tiny_weights(tmp_path / "a")
    second = build_tiny_weights(tmp_path / "b")
    for path in first.rglob("*.safetensors"):
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()


def test_missing_folder(tmp_path):
    with pytest.raises(WeightsError, match="no weights folder for lightricks:2@1.*--weights tiny"):
        check_folder(tmp_path / "nowhere", FAST)


def test_folder_without_model_index(tmp_path):
    (tmp_path / "w").mkdir()
    with pytest.raises(WeightsError, match="cannot read model_index.json"):
        check_folder(tmp_path / "w", FAST)


def test_folder_of_another_pipeline(tiny_weights, tmp_path):
    folder = copy_of(tiny_weights, tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "WanPipeline"}))
    with pytest.raises(WeightsError, match="'WanPipeline' pipeline"):
        check_folder(folder, FAST)


def test_folder_missing_a_component(tiny_weights, tmp_path):
    folder = copy_of(tiny_weights, tmp_path)
    shutil.rmtree(folder / "latent_upsampler")
    with pytest.raises(WeightsError, match="lacks the component folder.*latent_upsampler"):
        check_folder(folder, FAST)


def test_guided_models_need_their_distilled_lora(tiny_weights, tmp_path):
    folder = copy_of(tiny_weights, tmp_path)
    shutil.rmtree(folder / "distilled_lora")
    check_folder(folder, FAST)  # Fast runs the distilled model itself
    with pytest.raises(WeightsError, match="lacks the component folder.*distilled_lora"):
        check_folder(folder, get_model("lightricks:2@0"))


def test_file_size_differs_from_the_lock(tiny_weights, tmp_path):
    folder = copy_of(tiny_weights, tmp_path)
    vae_file = "vae/diffusion_pytorch_model.safetensors"
    real_size = (folder / vae_file).stat().st_size
    lock = write_lock(tmp_path / "lock.json", FAST.id, [{"path": vae_file, "size": real_size, "sha256": None}])
    check_folder(folder, FAST, lock)  # matching size passes

    with open(folder / vae_file, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(WeightsError, match=f"{vae_file} is {real_size + 1} bytes, weights.lock says {real_size}"):
        check_folder(folder, FAST, lock)


def test_file_listed_in_the_lock_is_missing(tiny_weights, tmp_path):
    lock = write_lock(tmp_path / "lock.json", FAST.id, [{"path": "transformer/shard-1.safetensors", "size": 5}])
    with pytest.raises(WeightsError, match="transformer/shard-1.safetensors is missing"):
        check_folder(tiny_weights, FAST, lock)


def test_corrupt_weights_file(tiny_weights, tmp_path):
    folder = copy_of(tiny_weights, tmp_path)
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="cannot load the weights"):
        load_components(folder, FAST, torch.float32)


def test_weights_of_another_model_are_refused(tiny_weights):
    # The tiny LTX-2 folder has a 24 kHz vocoder; LTX-2.3's weights have a 48 kHz one.
    with pytest.raises(WeightsError, match="24000 Hz vocoder; lightricks:ltx@2.3 .* needs 48000 Hz"):
        load_components(tiny_weights, get_model("lightricks:ltx@2.3"), torch.float32)


def test_a_weights_root_holds_one_folder_per_model(tiny_weights, tmp_path):
    assert resolve_folder(tiny_weights, FAST) == tiny_weights
    assert resolve_folder(tmp_path, FAST) == tmp_path / FAST.weights


def test_engine_reports_a_missing_folder_before_generating(tmp_path):
    engine = Engine(tmp_path / "weights", lock={})
    request = GenerationRequest(model=FAST.id, prompt="a cat", width=1920, height=1080, duration=6, fps=25, audio=True)
    with pytest.raises(WeightsError, match="no weights folder"):
        engine.generate(request, tmp_path / "clip.mp4")
    assert not (tmp_path / "clip.mp4").exists()


def test_lock_of_an_unknown_format_is_refused(tmp_path):
    (tmp_path / "lock.json").write_text(json.dumps({"format": 99, "models": {}}))
    with pytest.raises(WeightsError, match="format 99"):
        read_lock(tmp_path / "lock.json")


def test_a_lora_in_lightricks_key_format_loads_like_the_diffusers_one(tiny_root, tmp_path):
    """The released distilled LoRAs use Lightricks' own keys (`diffusion_model.…`), which diffusers converts on load."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "ltx-2.3"
    shutil.copytree(tiny_root / "ltx-2.3", folder)
    (diffusers_file,) = (folder / LORA_FOLDER).glob("*.safetensors")
    state = load_file(diffusers_file)
    diffusers_file.unlink()
    save_file({key.replace("transformer.", "diffusion_model.", 1): value for key, value in state.items()},
              folder / LORA_FOLDER / "ltx-2.3-22b-distilled-lora-384-1.1.safetensors")  # fmt: skip

    spec = get_model("ltx-runtime:tiny-ltx23@1")
    official = load_components(folder, spec, torch.float32).pipeline.transformer
    reference = load_components(tiny_root / "ltx-2.3", spec, torch.float32).pipeline.transformer
    lora = {name: p for name, p in official.named_parameters() if "lora_" in name}
    assert lora, "the LoRA was loaded"
    reference_lora = dict(reference.named_parameters())
    assert all(torch.equal(parameter, reference_lora[name]) for name, parameter in lora.items())


def test_tiny_weights_passed_for_a_hosted_model_say_what_they_are(tiny_weights, tmp_path):
    """`--weights DIR` with a folder from `weights build-tiny` and a hosted model id: the error says that DIR holds
    tiny demo weights and how to use them (it used to say "tokenizer/tokenizer.model is missing")."""
    engine = Engine(str(tiny_weights), x264_preset="ultrafast")  # with the shipped weights.lock
    request = GenerationRequest(model=FAST.id, prompt="a cat", width=1920, height=1080, duration=6, fps=25, audio=False)
    with pytest.raises(WeightsError) as raised:
        engine.generate(request, tmp_path / "clip.mp4")
    message = str(raised.value)
    assert "tiny random demo weights" in message and "weights build-tiny" in message
    assert "--weights tiny" in message and "ltx-runtime:tiny@1" in message and "missing" not in message
    assert not (tmp_path / "clip.mp4").exists()
