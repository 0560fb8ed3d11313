"""The content classifier, the frames each mode checks, and the engine's frame observer, on tiny weights."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from ltx_runtime.admission import REQUIRED_FILES, SAFETY_CHECKER, MemoryProfile
from ltx_runtime.engine import GenerationRequest
from ltx_runtime.safety import (
    ContentFlagged,
    FrameScreen,
    SafetyChecker,
    SafetyMode,
    SafetyRequest,
    build_tiny_safety_checker,
    checker_device,
    clip_pixels,
    ensure_tiny_safety_checker,
    frames_to_check,
    key_frames,
)
from ltx_runtime.weights import WeightsError, read_lock

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_checker_folder(tmp_path_factory):
    return ensure_tiny_safety_checker(tmp_path_factory.mktemp("safety"))


def noise_frames(count: int, height: int = 72, width: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def test_fast_mode_checks_the_first_and_last_frames_and_one_per_second():
    assert key_frames(200, 25).tolist() == [0, 25, 50, 75, 100, 125, 150, 175, 199]  # 1080p 8 s at 25 fps
    assert key_frames(150, 25).tolist() == [0, 25, 50, 75, 100, 125, 149]
    assert key_frames(500, 50).tolist() == [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 499]
    assert key_frames(9, 9).tolist() == [0, 8]
    assert key_frames(1, 25).tolist() == [0]


def test_full_mode_checks_every_frame_and_none_checks_nothing():
    assert frames_to_check(SafetyMode.FULL, 200, 25).tolist() == list(range(200))
    assert frames_to_check(SafetyMode.NONE, 200, 25).size == 0
    assert frames_to_check(SafetyMode.FAST, 200, 25).tolist() == key_frames(200, 25).tolist()


def test_a_required_mode_only_ever_makes_a_request_stricter():
    asked_full = SafetyRequest(SafetyMode.FULL)
    assert asked_full.at_least(SafetyMode.FAST) == SafetyRequest(SafetyMode.FULL, check_inputs=True)
    assert SafetyRequest().at_least(SafetyMode.FAST) == SafetyRequest(SafetyMode.FAST, check_inputs=True)
    assert SafetyRequest().at_least(SafetyMode.NONE) == SafetyRequest()
    assert not SafetyRequest().active and SafetyRequest(check_inputs=True).active
    assert SafetyRequest.from_dict(asked_full.to_dict()) == asked_full
    assert SafetyRequest.from_dict(None) == SafetyRequest()  # a job stored before safety existed


def bright_frames(flags_seen: list[list[int]]):
    """A stand-in classifier that flags white frames, recording the frames of each batch it is given."""

    def flags(frames: np.ndarray) -> np.ndarray:
        flags_seen.append([int(frame[0, 0, 0]) for frame in frames])
        return frames.reshape(len(frames), -1).mean(axis=1) > 200

    return flags


def stream(total: int, chunk: int, white: int | None = None):
    """Chunks of frames whose first pixel holds their index (mod 256); frame `white` is all white."""
    frames = np.zeros((total, 4, 4, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(total) % 200
    if white is not None:
        frames[white] = 255
    return [frames[start : start + chunk] for start in range(0, total, chunk)]


def feed(screen: FrameScreen, chunks) -> int:
    """Pass the chunks through the screen as the engine does; returns how many chunks went on to the encoder."""
    first = passed = 0
    for chunk in chunks:
        screen(chunk, first)
        first += len(chunk)
        passed += 1
    return passed


def test_fast_mode_sees_only_key_frames_and_misses_a_flash_between_them():
    seen: list[list[int]] = []
    screen = FrameScreen(bright_frames(seen), SafetyMode.FAST, 200, 25)
    assert feed(screen, stream(200, 24, white=130)) == 9  # frame 130 is no key frame: it goes unchecked
    assert sorted(index for batch in seen for index in batch) == [0, 25, 50, 75, 100, 125, 150, 175, 199]
    assert screen.checked == 9


def test_full_mode_flags_the_frame_and_stops_before_its_chunk_is_encoded():
    seen: list[list[int]] = []
    screen = FrameScreen(bright_frames(seen), SafetyMode.FULL, 200, 25)
    chunks = stream(200, 24, white=130)
    with pytest.raises(ContentFlagged, match="full mode.* flagged frame 130 of 200"):
        feed(screen, chunks)
    assert screen.checked == 144  # six chunks of 24: the one holding frame 130 was the last checked
    assert [len(batch) for batch in seen] == [24] * 6  # one classifier call per streamed chunk


def test_the_tiny_classifier_has_the_real_layout_and_the_adjustment_forces_either_outcome(tiny_checker_folder):
    assert {path.name for path in tiny_checker_folder.iterdir()} >= set(REQUIRED_FILES)
    config = json.loads((tiny_checker_folder / "config.json").read_text())
    assert config["architectures"] == ["StableDiffusionSafetyChecker"]
    frames = noise_frames(20)
    stock = SafetyChecker.load(tiny_checker_folder, CPU)
    assert not stock.flags(frames).any()
    strict = SafetyChecker.load(tiny_checker_folder, CPU, adjustment=3.0)
    assert strict.flags(frames).all()
    # The adjustment, plus the 0.01 of the special-care concepts that it makes fire too.
    assert np.allclose(strict.scores(frames) - stock.scores(frames), 3.01, atol=1e-5)


def test_scores_follow_diffusers_rule(tiny_checker_folder):
    """At the stock adjustment our batched scores flag exactly the frames diffusers' own forward_onnx flags."""
    checker = SafetyChecker.load(tiny_checker_folder, CPU)
    frames = noise_frames(40, seed=3)
    frames[::3] = frames[::3] // 4  # darker frames, for a spread of embeddings
    pixels = checker.processor(images=list(frames), return_tensors="pt").pixel_values
    model = checker.model
    with torch.no_grad():
        embeds = model.visual_projection(model.vision_model(pixels)[1])
        from diffusers.pipelines.stable_diffusion.safety_checker import cosine_distance

        # Concept 0's threshold at its median similarity, so that about half the frames are flagged; the others never
        model.concept_embeds_weights.fill_(2.0)
        model.concept_embeds_weights[0] = cosine_distance(embeds, model.concept_embeds)[:, 0].median()
        model.special_care_embeds_weights.copy_(cosine_distance(embeds, model.special_care_embeds).max(dim=0).values)
        model.special_care_embeds_weights[0] -= 1e-3  # one special-care concept fires for one frame at least
        _, expected = model.forward_onnx(pixels, torch.zeros(len(frames), 1))
    flags = checker.flags(frames)
    assert 0 < flags.sum() < len(frames)
    assert flags.tolist() == expected.tolist()


@pytest.mark.parametrize("height, width", [(1080, 1920), (1920, 1080), (96, 160)])
def test_the_gpu_preprocessing_matches_the_clip_image_processor(height, width):
    from PIL import Image
    from transformers import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil()  # the real checker's settings: short side 224, centre crop 224, bicubic
    rng = np.random.default_rng(5)
    # Smooth images, as video frames are: upsampled noise.
    frames = np.stack([
        np.asarray(Image.fromarray(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)).resize((width, height)))
        for _ in range(3)
    ])  # fmt: skip
    expected = processor(images=list(frames), return_tensors="pt").pixel_values
    ours = clip_pixels(torch.from_numpy(frames), processor)
    assert ours.shape == expected.shape == (3, 3, 224, 224)
    one_level = 1 / 255 / min(processor.image_std)
    assert (ours - expected).abs().max() <= one_level + 1e-4
    assert (ours - expected).abs().mean() < one_level / 4


def test_a_folder_without_the_classifier_is_refused_with_what_to_do(tiny_checker_folder, tmp_path):
    with pytest.raises(WeightsError, match=f"missing config.json.*weights pull {SAFETY_CHECKER}"):
        SafetyChecker.load(tmp_path / "nothing", CPU)
    partial = shutil.copytree(tiny_checker_folder, tmp_path / "partial")
    (partial / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing model.safetensors"):
        SafetyChecker.load(partial, CPU)


def test_real_weights_are_checked_against_the_lock(tiny_checker_folder, tmp_path):
    copy = shutil.copytree(tiny_checker_folder, tmp_path / "copy")
    entry = read_lock()[SAFETY_CHECKER]
    SafetyChecker.load(copy, CPU, lock_entry=entry)  # the tiny stand-in is exempt, as tiny LTX weights are
    next(copy.glob("ltx_runtime_tiny_safety.json")).unlink()
    with pytest.raises(WeightsError, match="preprocessor_config.json is .* bytes, weights.lock says 342"):
        SafetyChecker.load(copy, CPU, lock_entry=entry)


def test_the_shipped_lock_pins_the_classifier():
    entry = read_lock()[SAFETY_CHECKER]
    assert entry.folder == SAFETY_CHECKER and not entry.complete
    (source,) = entry.sources
    assert source.repo == "CompVis/stable-diffusion-safety-checker" and len(source.revision) == 40
    assert sorted(source.include) == sorted(REQUIRED_FILES) == sorted(item.path for item in source.files)


def test_the_classifier_stays_off_a_gpu_short_of_memory():
    cuda = torch.device("cuda")
    assert checker_device(cuda, MemoryProfile.RESIDENT) == cuda
    assert checker_device(cuda, MemoryProfile.FP8) == CPU
    assert checker_device(cuda, MemoryProfile.LOW) == CPU
    assert checker_device(CPU, MemoryProfile.RESIDENT) == CPU


def test_the_engine_shows_every_frame_to_its_observer_in_order(engine, tmp_path, prober):
    # 96 frames: more than one of the official 80-frame temporal decode tiles
    request = GenerationRequest(model="ltx-runtime:tiny@1", prompt="a cat", width=64, height=64, duration=8, fps=12,
                                audio=False, seed=1)  # fmt: skip
    seen: list[tuple[int, int]] = []
    result = engine.generate(
        request, tmp_path / "a.mp4", frame_observer=lambda chunk, first: seen.append((first, len(chunk)))
    )
    assert seen[0][0] == 0 and len(seen) > 1  # streamed: more than one chunk
    assert all(first == previous + count for (previous, count), (first, _) in zip(seen, seen[1:]))
    assert sum(count for _, count in seen) == result.frames == 96 == prober(result.path).frames


def test_a_flagged_clip_leaves_no_file(engine, tmp_path, tiny_checker_folder):
    request = GenerationRequest(model="ltx-runtime:tiny@1", prompt="a cat", width=64, height=64, duration=1, fps=8,
                                audio=False, seed=1)  # fmt: skip
    screen = FrameScreen(SafetyChecker.load(tiny_checker_folder, CPU, adjustment=3.0).flags, SafetyMode.FAST, 8, 8)
    with pytest.raises(ContentFlagged, match="flagged frame 0 of 8"):
        engine.generate(request, tmp_path / "flagged.mp4", frame_observer=screen)
    assert not (tmp_path / "flagged.mp4").exists()


def test_building_the_tiny_classifier_again_replaces_it(tmp_path):
    folder = build_tiny_safety_checker(tmp_path / SAFETY_CHECKER)
    (folder / "stale").write_text("x")
    assert ensure_tiny_safety_checker(tmp_path) == folder and (folder / "stale").exists()  # current: kept
    build_tiny_safety_checker(folder)
    assert not (folder / "stale").exists()
