"""A RunComfy submit body, checked against the model catalog, to the runtime's `Job`.

The seed (shared/seeds/004) documents `ltx/ltx-2/fast/text-to-video`: `prompt` (required), `duration` (6-20, even;
default 6), `resolution` (1080p, 1440p, 2160p; default 1080p), `aspect_ratio` (16:9), `fps` (25, 50; default 25),
`generate_audio` (default true). Which durations go with which size and frame rate is the catalog's rule (Fast: above
10 s at 1920x1080 25 fps only). Extensions of this server: the `pro` model, the `image-to-video` mode (`image_url`),
an optional `seed`, and, in demo mode, the `ltx-runtime/tiny` stand-ins, whose `resolution` may be any "WIDTHxHEIGHT"
the tiny model takes.
"""

from __future__ import annotations

import re
from typing import Any

from ltx_runtime.catalog import ModelSpec, SizeRange, get_model
from ltx_runtime.request import MAX_SEED

from ...media.netguard import BlockedURLError, parse_url
from ...tasks.jobs import Job, job_seeds
from ..bodies import parameter_name, shown
from .protocol import invalid_parameter, unknown_model

# Model path (owner/family/variant) -> catalog id; the demo stand-ins are offered in demo mode only.
MODEL_PATHS = {"ltx/ltx-2/fast": "lightricks:2@1", "ltx/ltx-2/pro": "lightricks:2@0"}
DEMO_MODEL_PATHS = {"ltx-runtime/tiny/fast": "ltx-runtime:tiny@1", "ltx-runtime/tiny/pro": "ltx-runtime:tiny-pro@1"}
# LTX-2.5, in the seed's path shape (RunComfy lists no 2.5 endpoint; ltx25.md section 2.3). Its durations, sizes and
# portrait orientation are the catalog's; without a duration the duration head picks it.
MODEL_PATHS.update({"ltx/ltx-2-5/fast": "lightricks:ltx@2.5-fast", "ltx/ltx-2-5/pro": "lightricks:ltx@2.5-pro"})
DEMO_MODEL_PATHS.update({"ltx-runtime/tiny-ltx25/fast": "ltx-runtime:tiny-ltx25@1",
                         "ltx-runtime/tiny-ltx25/pro": "ltx-runtime:tiny-ltx25-pro@1"})  # fmt: skip
MODES = ("text-to-video", "image-to-video")
RESOLUTIONS = {"720p": 720, "1080p": 1080, "1440p": 1440, "2160p": 2160}
"""The short side; the catalog says which sizes each model takes."""
ASPECT_RATIOS = {"16:9": (16, 9), "9:16": (9, 16)}
DEFAULTS = {"duration": 6, "resolution": "1080p", "aspect_ratio": "16:9", "fps": 25, "generate_audio": True}
FREE_SIZE = re.compile(r"^(\d+)x(\d+)$")


def model_paths(demo: bool) -> dict[str, str]:
    return {**MODEL_PATHS, **(DEMO_MODEL_PATHS if demo else {})}


def resolve_model(path: str, mode: str, demo: bool) -> ModelSpec:
    """The catalog entry behind a model path such as ltx/ltx-2/fast, for a mode such as text-to-video."""
    paths = model_paths(demo)
    if path not in paths or mode not in MODES:
        raise unknown_model(f"{path}/{mode}", [f"{p}/{m}" for p in paths for m in MODES])
    return get_model(paths[path])


def validate_submit(body: Any, spec: ModelSpec, mode: str) -> Job:
    if not isinstance(body, dict):
        raise invalid_parameter("body", "the body must be a JSON object")
    allowed = {"prompt", "seed", *DEFAULTS} | ({"image_url"} if mode == "image-to-video" else set())
    for key in body:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            name = parameter_name(key)
            raise invalid_parameter(name, f"{name} is not a parameter of {mode} (parameters: {known})")

    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not 2 <= len(prompt) <= 10000:
        raise invalid_parameter("prompt", "prompt is required: a string of 2 to 10000 characters")
    values = {**DEFAULTS, **body}
    width, height = _size(values["resolution"], values["aspect_ratio"], spec)
    fps = values["fps"]
    if isinstance(fps, bool) or not isinstance(fps, int) or fps not in spec.fps_values:
        raise invalid_parameter("fps", f"fps must be one of {', '.join(map(str, spec.fps_values))}, got {shown(fps)}")
    duration = body.get("duration", None if spec.picks_duration else DEFAULTS["duration"])
    if duration is not None or not spec.picks_duration:
        _check_duration(duration, spec, width, height, fps)
    audio = values["generate_audio"]
    if not isinstance(audio, bool):
        raise invalid_parameter("generate_audio", f"generate_audio must be true or false, got {shown(audio)}")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise invalid_parameter("seed", f"seed must be an integer from 0 to {MAX_SEED}, got {shown(seed)}")

    return Job(
        model=spec.id,
        prompt=prompt,
        width=width,
        height=height,
        duration=None if duration is None else float(duration),
        fps=fps,
        audio=audio,
        seeds=job_seeds(seed, 1),
        frame_images=[{"image": _image_url(body), "frame": 0}] if mode == "image-to-video" else None,
    )


def _check_duration(duration: Any, spec: ModelSpec, width: int, height: int, fps: int) -> None:
    if isinstance(duration, bool) or not isinstance(duration, int):
        allowed = spec.describe_durations()
        raise invalid_parameter("duration", f"duration must be one of {allowed} seconds, got {shown(duration)}")
    problem = spec.duration_error(width, height, duration, fps)
    if problem:
        raise invalid_parameter("duration", problem)


def _size(resolution: Any, aspect_ratio: Any, spec: ModelSpec) -> tuple[int, int]:
    if not isinstance(aspect_ratio, str) or aspect_ratio not in ASPECT_RATIOS:  # a list here was a TypeError
        allowed = ", ".join(ASPECT_RATIOS)
        raise invalid_parameter("aspect_ratio", f"aspect_ratio must be one of {allowed}, got {shown(aspect_ratio)}")
    free = FREE_SIZE.match(resolution) if isinstance(resolution, str) and isinstance(spec.sizes, SizeRange) else None
    if free:
        width, height = int(free.group(1)), int(free.group(2))
    elif isinstance(resolution, str) and resolution in RESOLUTIONS:
        across, down = ASPECT_RATIOS[aspect_ratio]
        short = RESOLUTIONS[resolution]
        width, height = (short * across // down, short) if across >= down else (short, short * down // across)
    else:
        extra = ' or "WIDTHxHEIGHT" for this demo model' if isinstance(spec.sizes, SizeRange) else ""
        allowed = ", ".join(RESOLUTIONS) + extra
        raise invalid_parameter("resolution", f"resolution must be one of {allowed}, got {shown(resolution)}")
    size_problem = spec.size_problem(width, height)
    if size_problem:
        portrait = height > width
        listed = () if isinstance(spec.sizes, SizeRange) else spec.sizes
        if listed and not any((h > w) == portrait for w, h in listed):  # LTX-2 Fast and Pro are landscape only
            message = f"{spec.id} makes no {aspect_ratio} clips; its sizes: {spec.describe_sizes()}"
            raise invalid_parameter("aspect_ratio", message)
        raise invalid_parameter("resolution", size_problem)
    return width, height


def _image_url(body: dict) -> str:
    """image-to-video's first frame: an http(s) URL (fetched after the reply) or a data URI."""
    image = body.get("image_url")
    if isinstance(image, str) and image.startswith("data:image/"):
        return image
    try:
        parse_url(image if isinstance(image, str) else "")
    except BlockedURLError:
        raise invalid_parameter(
            "image_url", "image_url is required: an http(s) URL of a PNG, JPEG or WEBP image, or a data URI"
        ) from None
    return image

