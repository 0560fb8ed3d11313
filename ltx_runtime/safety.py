"""Content safety: a frame classifier from local weights, the frames each mode checks, and a screen for streamed frames.

The classifier is diffusers' own `StableDiffusionSafetyChecker`, with the CLIP image processor it is paired with in
the Stable Diffusion pipelines: CLIP ViT-L/14 image embeddings compared by cosine similarity with 17 concept
embeddings and 3 "special care" embeddings, each with its own threshold (weights.lock entry `safety-checker`:
CompVis/stable-diffusion-safety-checker). It was chosen over a hub image-classification model because it is a
component of the library this runtime already loads everything with (no new dependency, the same `from_pretrained`
loader and offline rules), and because it is the checker the field has run on generated images for years, with its
limits known: it looks for sexual content only (not violence or other policy areas) and errs towards false
positives. Flagging follows diffusers' rule (`forward_onnx`, vectorised): a special-care score above 0 adds 0.01 to
every concept score, and an image is flagged when a concept score is above 0. `adjustment` is diffusers' own knob,
added to every score: 0.0 is the stock checker, higher flags more.

Modes, as the hosted contract names them: `fast` checks key frames (the first, the last and one per second between),
`full` checks every frame. Frames are checked as the decoder streams them out (`FrameScreen` is the engine's frame
observer), in batches, and a flagged frame stops the clip before its chunk reaches the encoder.
"""

from __future__ import annotations

import fcntl
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from .admission import SAFETY_CHECKER, MemoryProfile, missing_files
from .request import SafetyMode, SafetyRequest
from .weights import LockEntry, WeightsError, _check_against_lock

BATCH_SIZE = 16
"""Frames per classifier pass: 16 x 3 x 224 x 224 inputs, well under 1 GB of activations for ViT-L/14."""
TINY_MARKER = "ltx_runtime_tiny_safety.json"
TINY_FORMAT_VERSION = 1
TINY_CONCEPT_THRESHOLD = 1.5
"""The tiny stand-in's thresholds, above any cosine similarity: it never flags with the stock adjustment (0.0) and
always flags from an adjustment of 2.51 up, so that tests can force either outcome."""


class ContentFlagged(Exception):
    """The classifier flagged a frame of the output, or the first-frame image; the message says which."""


def key_frames(total_frames: int, fps: int) -> np.ndarray:
    """Indices `fast` checks: the first frame, one per second after it, and the last."""
    return np.unique(np.append(np.arange(0, total_frames, fps), total_frames - 1))


def frames_to_check(mode: SafetyMode, total_frames: int, fps: int) -> np.ndarray:
    if mode is SafetyMode.FULL:
        return np.arange(total_frames)
    if mode is SafetyMode.FAST:
        return key_frames(total_frames, fps)
    return np.arange(0)


def image_pixels(data: bytes) -> np.ndarray:
    """An image file as sent (checkInputs), turned upright by its EXIF orientation: RGB uint8 [H, W, 3]."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def checker_device(engine_device: torch.device, profile: MemoryProfile) -> torch.device:
    """On the GPU beside resident weights (80 GB-class cards: 0.6 GB in bf16, inside the share the memory budget
    leaves free); on the CPU under the fp8 and low profiles, which already stream weights to fit the GPU."""
    if engine_device.type == "cuda" and profile is MemoryProfile.RESIDENT:
        return engine_device
    return torch.device("cpu")


class SafetyChecker:
    """The loaded classifier: `flags(frames)` says which uint8 RGB frames [n, H, W, 3] it flags."""

    def __init__(self, model, processor, adjustment: float = 0.0):
        self.model = model
        self.processor = processor
        self.adjustment = adjustment

    @property
    def device(self) -> torch.device:
        return self.model.device

    @classmethod
    def load(
        cls, folder: Path, device: torch.device, adjustment: float = 0.0, lock_entry: LockEntry | None = None
    ) -> "SafetyChecker":
        """Load from `folder` (offline), checked against `lock_entry` when given; WeightsError says what is wrong."""
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
        from transformers import CLIPImageProcessorPil

        folder = Path(folder)
        missing = missing_files(folder)
        if missing:
            raise WeightsError(
                f"no content classifier in {folder} (missing {', '.join(missing)}); run "
                f"`ltx-runtime weights pull {SAFETY_CHECKER}`, or point LTX_SAFETY_WEIGHTS at its folder"
            )
        if lock_entry is not None and not is_tiny_safety_checker(folder):
            _check_against_lock(folder, lock_entry)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        try:
            model = StableDiffusionSafetyChecker.from_pretrained(folder, dtype=dtype, local_files_only=True)
            processor = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            problem = f"{type(error).__name__}: {error}"
            raise WeightsError(f"cannot load the content classifier in {folder}: {problem}") from error
        return cls(model.to(device).eval(), processor, adjustment)

    @torch.inference_mode()
    def scores(self, frames: np.ndarray) -> np.ndarray:
        """Each frame's highest concept score (flagged above 0), computed in batches of BATCH_SIZE."""
        from diffusers.pipelines.stable_diffusion.safety_checker import cosine_distance

        model = self.model
        results = []
        for start in range(0, len(frames), BATCH_SIZE):
            pixels = self.pixel_values(frames[start : start + BATCH_SIZE]).to(model.dtype)
            # Similarities in float32 whatever the model's dtype, so that bf16 rounding cannot cross a threshold.
            embeds = model.visual_projection(model.vision_model(pixels)[1]).float()
            special = cosine_distance(embeds, model.special_care_embeds.float())
            special = special - model.special_care_embeds_weights.float()
            special_care = (special + self.adjustment > 0).any(dim=1, keepdim=True)
            concept = cosine_distance(embeds, model.concept_embeds.float()) - model.concept_embeds_weights.float()
            concept = concept + self.adjustment + special_care * 0.01
            results.append(concept.amax(dim=1).cpu().numpy())
        return np.concatenate(results) if results else np.zeros(0, dtype=np.float32)

    def flags(self, frames: np.ndarray) -> np.ndarray:
        return self.scores(frames) > 0

    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """The classifier's input for uint8 frames [n, H, W, 3]: the CLIP image processor's (PIL) on the CPU; on a
        GPU the same steps in torch there (`clip_pixels`), as 1080p frames would spend longer in PIL than in the
        classifier."""
        if self.device.type == "cuda":
            return clip_pixels(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device), self.processor)
        return self.processor(images=list(frames), return_tensors="pt").pixel_values


def clip_pixels(frames: torch.Tensor, processor) -> torch.Tensor:
    """The CLIP image processor's steps on uint8 frames [n, H, W, 3] wherever they are: resize the short side to
    `size.shortest_edge` (bicubic, antialiased, rounded to uint8 levels as PIL's is), centre-crop to `crop_size`,
    rescale and normalize. Within one uint8 level of the PIL processor (tests/engine/test_safety.py)."""
    images = frames.permute(0, 3, 1, 2).float()
    height, width = images.shape[-2:]
    short = processor.size.shortest_edge
    size = (short, int(short * width / height)) if height <= width else (int(short * height / width), short)
    images = torch.nn.functional.interpolate(images, size=size, mode="bicubic", antialias=True, align_corners=False)
    images = images.round().clamp(0, 255)
    crop_height, crop_width = processor.crop_size.height, processor.crop_size.width
    top, left = (size[0] - crop_height) // 2, (size[1] - crop_width) // 2
    images = images[:, :, top : top + crop_height, left : left + crop_width] * processor.rescale_factor
    mean = torch.tensor(processor.image_mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


class FrameScreen:
    """The engine's frame observer for one clip: checks the frames `mode` selects as the chunks stream past and
    raises ContentFlagged at the first flagged one, before its chunk reaches the encoder. Keeps no state between
    chunks except counters, so a clip decoded again (the engine's out-of-memory retry) is checked again."""

    def __init__(self, flags, mode: SafetyMode, total_frames: int, fps: int):
        self.flags = flags
        self.mode = mode
        self.wanted = frames_to_check(mode, total_frames, fps)
        self.total_frames = total_frames
        self.checked = 0
        self.seconds = 0.0

    def __call__(self, chunk: np.ndarray, first: int) -> None:
        indices = self.wanted[(self.wanted >= first) & (self.wanted < first + len(chunk))]
        if len(indices) == 0:
            return
        started = time.perf_counter()
        flagged = np.asarray(self.flags(chunk[indices - first]))
        self.seconds += time.perf_counter() - started
        self.checked += len(indices)
        if flagged.any():
            frame = int(indices[np.argmax(flagged)])
            raise ContentFlagged(
                f"the content safety check ({self.mode.value} mode) flagged frame {frame} of {self.total_frames} of "
                "the generated video; it is not served, uploaded or sent"
            )


def build_tiny_safety_checker(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random classifier in the real layout (config.json, model.safetensors, preprocessor_config.json)
    to `folder`, replacing it atomically; see TINY_CONCEPT_THRESHOLD for how it flags."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessorPil

    folder = Path(folder)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )  # fmt: skip
    model = StableDiffusionSafetyChecker(config)
    with torch.no_grad():
        model.concept_embeds.normal_()
        model.special_care_embeds.normal_()
        model.concept_embeds_weights.fill_(TINY_CONCEPT_THRESHOLD)
        model.special_care_embeds_weights.fill_(TINY_CONCEPT_THRESHOLD)
    model.save_pretrained(staging)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(staging)
    (staging / TINY_MARKER).write_text(json.dumps({"format": TINY_FORMAT_VERSION, "seed": seed}) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def is_tiny_safety_checker(folder: Path) -> bool:
    return (Path(folder) / TINY_MARKER).is_file()


def ensure_tiny_safety_checker(root: Path) -> Path:
    """Return `root/safety-checker` holding the current tiny classifier, building it first if absent or outdated.
    Workers of several servers may share `root` (the tests do): a file lock lets one build while the others wait."""
    folder = Path(root) / SAFETY_CHECKER
    marker = folder / TINY_MARKER
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{SAFETY_CHECKER}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and json.loads(marker.read_text()).get("format") == TINY_FORMAT_VERSION:
            return folder
        return build_tiny_safety_checker(folder)
