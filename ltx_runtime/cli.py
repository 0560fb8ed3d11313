"""The `ltx-runtime` command line: the library's commands. `serve` is added by the server (`server/main.py`, whose
`main` is the `ltx-runtime` script), so that the library never imports the server."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from .catalog import MODELS, VIDEO_DECODER_SETTINGS, get_model
from .media import QUALITY_DEFAULT, OutputFormat
from .loras import REPOSITORY_LOCK_PATH
from .weights import TINY

# Plain help (click's): typer's rich panels show a type (<bool>) even after flags that take no value.
app = typer.Typer(help="Self-hosted inference runtime for Lightricks' LTX-2 video+audio models.", no_args_is_help=True,
                  rich_markup_mode=None)  # fmt: skip
weights_app = typer.Typer(
    help="Model weights: download and check them against weights.lock, lock them from the hub, or build tiny ones.",
    no_args_is_help=True, rich_markup_mode=None,
)
app.add_typer(weights_app, name="weights")
console = Console(stderr=True)

DEFAULT_WEIGHTS = str(Path.home() / ".cache" / "ltx-runtime" / "weights")
"""--weights when LTX_WEIGHTS_DIR is unset (the options read it as they parse, not when this module is imported)."""
TINY_WARNING = "[bold yellow]WARNING: tiny random weights (demo/test mode): the {what} noise.[/]"


@app.command()
def generate(
    prompt: str = typer.Option(..., "--prompt", "-p", help="What the clip shows (2-10000 characters)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file; its suffix picks the format if --format is not given."),
    model: str = typer.Option("lightricks:2@1", "--model", "-m", help="Model id (see `ltx-runtime models`)."),
    width: Optional[int] = typer.Option(None, help="Width in pixels (default: the model's, 1920 for hosted models)."),
    height: Optional[int] = typer.Option(None, help="Height in pixels (default: the model's, 1080 for hosted models)."),
    duration: Optional[float] = typer.Option(None, help="Seconds (default: the model's, 6 for hosted models; LTX-2.5: its duration head picks 1-20 s from the prompt)."),
    fps: Optional[int] = typer.Option(None, help="Frames per second (default: the model's, 25 for hosted models)."),
    audio: Optional[bool] = typer.Option(None, "--audio/--no-audio", help="Generate a stereo soundtrack (default: the model's; on with --audio-input)."),
    seed: Optional[int] = typer.Option(None, help="Random seed; the same seed gives the same clip (default: random)."),
    output_format: Optional[OutputFormat] = typer.Option(None, "--format", help="mp4, webm or mov (default: from the output suffix, else mp4)."),
    quality: int = typer.Option(QUALITY_DEFAULT, help="20-99, mapped onto the encoder's CRF (higher is better, larger)."),
    image: Optional[list[str]] = typer.Option(None, "--image", metavar="FILE[@FRAME]", help="Repeatable: an image (PNG, JPEG or WEBP) the clip shows at FRAME: first (the default), last, or a 0-based frame index (e.g. photo.png@48); resized and centre-cropped to the frame. One image per frame, at most one per latent frame of the clip (per 8 frames, plus one)."),
    audio_input: Optional[Path] = typer.Option(None, "--audio-input", help="Audio-to-video (LTX-2 Pro, LTX-2, LTX-2.3): an audio file (WAV, MP3, M4A/AAC, Ogg, FLAC; up to 60 s) the clip is generated to; it becomes the clip's soundtrack, trimmed or padded with silence to the duration.", exists=True, dir_okay=False),
    steps: Optional[int] = typer.Option(None, help="Guided models only: stage-1 denoising steps (default: the official 40 for LTX-2, 30 for LTX-2.3)."),
    guidance_scale: Optional[float] = typer.Option(None, help="Guided models only: the video CFG scale (default: the official 3.0)."),
    negative_prompt: Optional[str] = typer.Option(None, help="Guided models only: what to steer away from (default: the official negative prompt)."),
    lora: Optional[list[str]] = typer.Option(None, "--lora", help="ID=WEIGHT (repeatable): a LoRA listed in weights.lock or LTX_LORAS, its file in the weights root's loras/ folder, at that weight for this clip (LTX-2.3 models)."),
    weights: str = typer.Option(DEFAULT_WEIGHTS, envvar="LTX_WEIGHTS_DIR", help="A model folder, a root of per-model folders, or 'tiny' for random demo weights."),
    memory_profile: str = typer.Option("auto", help="Where the weights live: resident (bf16, 80 GB GPUs), fp8 (~48 GB), low (24 GB, streamed from host memory), or auto (by the GPU's memory, per model)."),
    video_decoder: str = typer.Option("auto", envvar="LTX_VIDEO_DECODER", help="LTX-2.5's video decoder: diffusion (the official default; needs vae/ltx-2.5-video-vae-bf16.safetensors), conv (the conv VAE), or auto: diffusion on a GPU, conv on the CPU (where the diffusion decoder takes minutes a second of video). Other models always use the conv VAE."),
) -> None:
    """Generate one clip and write it to --output."""
    from .loras import LoraListError, default_lock_path, read_loras
    from .request import GenerationRequest, RequestError, validate_request
    from .progress import STAGE_LABELS, STAGES, JobProgress, StageTimes
    from .weights import WeightsError, check_folder, resolve_folder

    try:
        spec = get_model(model)
    except KeyError as error:
        fail(f"--model: {error}", code=2)
    suffix = output.suffix.lower().lstrip(".")
    formats = [f.value for f in OutputFormat]
    if output_format is None:
        if suffix and suffix not in formats:  # never a file whose name says another container than it holds
            fail(f"--output: {output.name} names a .{suffix} file; this writes {', '.join(formats)} "
                  f"(name the file so, or pass --format)", code=2)  # fmt: skip
        output_format = OutputFormat(suffix) if suffix else OutputFormat.MP4
    elif suffix and suffix != output_format.value:
        fail(f"--output: {output.name} does not end in .{output_format.value}, the --format asked for", code=2)
    request = GenerationRequest(
        model=spec.id,
        prompt=prompt,
        width=width if width is not None else spec.default_size[0],
        height=height if height is not None else spec.default_size[1],
        duration=duration if duration is not None else spec.default_duration,
        fps=fps if fps is not None else spec.default_fps,
        audio=(spec.audio_default or audio_input is not None) if audio is None else audio,
        seed=seed,
        output_format=output_format,
        quality=quality,
        keyframes=tuple(_keyframe(text) for text in image or ()),
        audio_input=audio_input.read_bytes() if audio_input else None,
        steps=steps,
        guidance_scale=guidance_scale,
        negative_prompt=negative_prompt,
        loras=tuple(_lora_choice(text) for text in lora or ()),
    )
    try:
        validate_request(request)
    except RequestError as error:
        _refuse(error)
    if video_decoder not in VIDEO_DECODER_SETTINGS:
        fail(f"--video-decoder: choose {', '.join(VIDEO_DECODER_SETTINGS)}, not {video_decoder!r}", code=2)
    if weights != TINY:  # before torch and diffusers are imported, which takes long
        try:
            # auto: the device is not known yet; loading checks the diffusion decoder's file when auto picks it
            check_folder(resolve_folder(Path(weights), spec), spec,
                         video_decoder="conv" if video_decoder == "auto" else video_decoder)  # fmt: skip
        except WeightsError as error:
            fail(str(error))
    if not sys.stderr.isatty():  # the loaders' progress bars are for terminals (set before they are imported)
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from .engine import Engine, OutOfMemory
    from .admission import MemoryProfile

    if memory_profile != "auto" and memory_profile not in {p.value for p in MemoryProfile}:
        fail(f"--memory-profile: choose auto, {', '.join(p.value for p in MemoryProfile)}", code=2)
    try:
        offered_loras = read_loras(default_lock_path(), os.environ.get("LTX_LORAS", ""))
    except LoraListError as error:
        fail(str(error))
    engine = Engine(weights, memory_profile=None if memory_profile == "auto" else MemoryProfile(memory_profile),
                    loras=offered_loras, video_decoder=video_decoder)  # fmt: skip
    if engine.uses_tiny_weights:
        what = "video and its audio are" if request.audio and request.audio_input is None else "video is"
        console.print(TINY_WARNING.format(what=what), soft_wrap=True)
    expected_duration = request.duration
    if expected_duration is None:  # the engine asks the head again, with the prompt's encoding cached
        try:
            expected_duration = engine.choose_duration(spec.id, request.prompt, request.fps)
        except WeightsError as error:
            fail(str(error))
        typer.echo(f"the duration head picked {expected_duration:g} s ({round(expected_duration * request.fps)} frames)")
    with Progress(
        TextColumn("{task.description:<14}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=console,
        transient=True,
    ) as progress_bar:
        task = progress_bar.add_task("starting", total=100)
        tracker = JobProgress(
            StageTimes().predict(spec.id, request.width, request.height, round(expected_duration * request.fps)),
            lambda stage, percent: progress_bar.update(task, completed=percent, description=STAGE_LABELS[stage]),
            stages=STAGES[:-1],  # no upload here
        )  # fmt: skip
        try:
            result = engine.generate(request, output, progress=tracker)
        except RequestError as error:
            _refuse(error)
        except (WeightsError, OutOfMemory) as error:
            fail(str(error))
    audio_text = f"{result.sample_rate} Hz stereo audio" if result.has_audio else "no audio"
    stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.timings.items() if name != "total")
    typer.echo(
        f"wrote {result.path}: {result.width}x{result.height}, {result.frames} frames at {result.fps} fps, "
        f"{result.duration:g} s, {audio_text}, {result.output_format.value}, seed {result.seed}, "
        f"{result.timings['total']:.1f} s ({stages})"
    )


OPTIONS = {"keyframes": "image"}
"""The option of a request field whose name differs from it."""


def _refuse(error) -> None:
    """Exit naming the option of the request field a RequestError names."""
    fail(f"--{OPTIONS.get(error.parameter, error.parameter).replace('_', '-')}: {error}", code=2)


def _keyframe(text: str):
    """--image FILE[@first|@last|@INDEX] (FILE alone: the first frame; a FILE whose name has an @ keeps it unless
    what follows the last @ is a frame)."""
    from .request import LAST, Keyframe

    path, _, frame = text.rpartition("@")
    if not path or not (frame in ("first", LAST) or frame.isdigit()):
        path, frame = text, "first"
    if not Path(path).is_file():
        fail(f"--image: {path} is not a file", code=2)
    return Keyframe(Path(path).read_bytes(), 0 if frame == "first" else frame if frame == LAST else int(frame))


def _lora_choice(text: str) -> tuple[str, float]:
    """--lora ID=WEIGHT (or ID alone: weight 1)."""
    lora_id, _, weight = text.rpartition("=") if "=" in text else (text, "", "1")
    try:
        return lora_id, float(weight)
    except ValueError:
        fail(f"--lora: {text!r} is not ID=WEIGHT with a number for the weight", code=2)


@app.command("models")
def list_models() -> None:
    """List the model ids this runtime serves, with their sizes, durations and frame rates."""
    for spec in MODELS.values():
        audio = ".".join(spec.audio_flag)
        long = ""
        default_duration = "picked by the duration head" if spec.picks_duration else spec.default_duration
        if spec.long_durations:
            long = f"; {', '.join(map(str, spec.long_durations))} s at {spec.describe_long_formats()} only"
        typer.echo(
            f"{spec.id}  {spec.name}\n"
            f"    sizes: {spec.describe_sizes()}\n"
            f"    durations: {', '.join(map(str, spec.durations))} s (default {default_duration}){long}; "
            f"fps: {spec.describe_fps()} (default {spec.default_fps})\n"
            f"    audio: {audio} (default {str(spec.audio_default).lower()}), {spec.audio_sample_rate} Hz stereo; "
            f"recipe: {spec.recipe.value}; weights: {spec.weights}"
        )


@weights_app.command("build-tiny")
def build_tiny(
    folder: Path = typer.Argument(..., help="Folder to write (replaced if it exists)."),
    architecture: str = typer.Option("ltx-2", help="ltx-2 (Fast, Pro), ltx-2.3 (LTX-2.3: gated attention, 48 kHz vocoder) or ltx-2.5 (LTX-2.5 Fast and Pro: Gemma 4, duration head)."),
    format: str = typer.Option("diffusers", help="diffusers: the diffusers layout; official: Lightricks' own files in the ltx-pipelines/ComfyUI layout (ltx-2, ltx-2.3: checkpoints/, latent_upscale_models/, loras/, a Gemma folder; ltx-2.5: one file per component in diffusion_models/, text_encoders/, vae/, latent_upscale_models/, loras/, model_patches/)."),
) -> None:
    """Write tiny random LTX-2 weights in the real diffusers layout or Lightricks' own format, offline (for tests and
    demo mode)."""
    from .official import build_tiny_official
    from .tiny import ARCHITECTURES, build_tiny_weights

    if format not in ("diffusers", "official"):
        fail("--format: choose diffusers or official", code=2)
    if architecture not in ARCHITECTURES:
        fail(f"--architecture: choose one of {', '.join(ARCHITECTURES)}", code=2)
    (build_tiny_weights if format == "diffusers" else build_tiny_official)(folder, architecture)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    typer.echo(f"wrote tiny {architecture} weights to {folder} ({size / 1e6:.1f} MB)")


_MODELS_ARGUMENT = typer.Argument(
    ..., help="Entries of weights.lock: model ids (e.g. lightricks:2@1), or safety-checker (the content classifier).",
    show_default=False,
)  # fmt: skip
_LOCK_OPTION = typer.Option(REPOSITORY_LOCK_PATH, "--lock", envvar="LTX_WEIGHTS_LOCK", help="The weights.lock file.")
_ROOT_OPTION = typer.Option(
    DEFAULT_WEIGHTS, "--weights", envvar="LTX_WEIGHTS_DIR",
    help="Root holding one folder per model (named in weights.lock).",
)  # fmt: skip


@weights_app.command("pull")
def weights_pull(models: list[str] = _MODELS_ARGUMENT, weights: Path = _ROOT_OPTION, lock: Path = _LOCK_OPTION) -> None:
    """Download the files weights.lock pins for each model, at the pinned commits, into WEIGHTS/<folder>.

    Files already downloaded at that commit are kept. Every file is hashed: one whose size or sha256 differs is refused.

    Sizes and hashes the lock lacks are recorded into it (trust on first use). Gated repositories need HF_TOKEN.
    """
    from .hub import pull
    from .weights import WeightsError

    entries = _lock_entries(lock, models)
    for model in models:
        try:
            folder = pull(entries[model], weights, lock, log=_note)
        except WeightsError as error:
            fail(str(error))
        typer.echo(f"{model}: {len(entries[model].files)} files in {folder} match {lock}")


@weights_app.command("verify")
def weights_verify(models: list[str] = _MODELS_ARGUMENT, weights: Path = _ROOT_OPTION, lock: Path = _LOCK_OPTION) -> None:
    """Re-hash each model's folder against weights.lock, offline: exit 0 only if every locked file is there and matches."""
    from .hub import model_folder, verify

    entries = _lock_entries(lock, models)
    all_good = True
    for model in models:
        entry = entries[model]
        bad = 0
        for check in verify(entry, weights):
            bad += check.problem is not None
            typer.echo(f"{model}  {check.local_path}: {check.problem or 'ok'}")
        if not entry.complete:
            bad += 1
            typer.echo(f"{model}: the lock entry lists part of the files only; run `ltx-runtime weights lock {model}`")
        all_good = all_good and bad == 0
        verdict = "all match" if bad == 0 else f"{bad} problem(s)"
        typer.echo(f"{model}: {len(entry.files)} locked files in {model_folder(weights, entry)}, {verdict}")
    if not all_good:
        raise typer.Exit(1)


@weights_app.command("lock")
def weights_lock(models: list[str] = _MODELS_ARGUMENT, lock: Path = _LOCK_OPTION) -> None:
    """Rewrite each model's weights.lock entry from the hub: commits, files, sizes and sha256.

    Needs the hub (HF_TOKEN for gated repositories). A pinned commit stays; a source with none gets the head of its ref.
    """
    from .hub import lock_entry
    from .weights import WeightsError

    entries = _lock_entries(lock, models)
    for model in models:
        try:
            lock_entry(entries[model], lock, log=_note)
        except WeightsError as error:
            fail(str(error))
        typer.echo(f"{model}: locked in {lock}")


def _lock_entries(lock: Path, models: list[str]) -> dict:
    """The lock's entries; exit 2 naming the known ones if a model id has none."""
    from .weights import WeightsError, read_lock

    try:
        entries = read_lock(lock)
    except WeightsError as error:
        fail(str(error))
    unknown = [model for model in models if model not in entries]
    if unknown:
        fail(f"no entry for {', '.join(unknown)} in {lock}; it has: {', '.join(entries)}", code=2)
    return entries


@app.command()
def bench(
    model: list[str] = typer.Option(["lightricks:2@1"], "--model", "-m", help="Model id; repeat for several (Pro: lightricks:2@0, LTX-2.3: lightricks:ltx@2.3)."),
    width: int = typer.Option(1920, help="Width in pixels."),
    height: int = typer.Option(1080, help="Height in pixels."),
    duration: float = typer.Option(8, help="Seconds."),
    fps: int = typer.Option(25, help="Frames per second."),
    audio: bool = typer.Option(True, "--audio/--no-audio", help="Generate and decode the soundtrack too."),
    weights: str = typer.Option("random", help="random: the real architectures with random weights, built on the GPU (no download); tiny: the tiny demo weights (runs on a CPU)."),
    configs: str = typer.Option("plain,optimized", help="Comma-separated configurations: plain, optimized, or one lever alone (attention=cudnn, attention=flash3, compile=on, fp8_matmul=on, unmasked_cross_attention=on, fp8_attention=on, cuda_graphs=on, vae_compile=on, vae_tiles=on, gpu_colour=on)."),
    per_lever: bool = typer.Option(False, "--per-lever", help="Run plain, each lever alone, then optimized (replaces --configs)."),
    repeats: Optional[int] = typer.Option(None, help="Measured clips per configuration (default: 3 on CUDA, 1 on the CPU)."),
    warmup: int = typer.Option(1, help="Clips run first and not counted, per configuration."),
    memory_fraction: Optional[float] = typer.Option(None, help="24 GB-class stand-in on a larger GPU: cap torch's CUDA allocator at this share of the GPU and use the low memory profile."),
    seed: int = typer.Option(42, help="Seed of every clip (the configurations are compared on the same seed)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the result as JSON here."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="Write the result as Markdown tables here."),
) -> None:
    """Benchmark plain diffusers against the optimized path, stage by stage, with a quality guard; prints Markdown."""
    import json
    import shlex
    import sys

    from .bench import LEVERS, BenchError, BenchOptions, render_markdown, run_bench

    chosen = ("plain", *LEVERS, "optimized") if per_lever else tuple(name.strip() for name in configs.split(","))
    options = BenchOptions(models=tuple(model), width=width, height=height, duration=duration, fps=fps, audio=audio,
                           weights=weights, configs=chosen, repeats=repeats, warmup=warmup,
                           memory_fraction=memory_fraction, seed=seed)  # fmt: skip
    try:
        result = run_bench(options, command=shlex.join(["ltx-runtime", *sys.argv[1:]]), log=_note)
    except BenchError as error:
        fail(str(error), code=2)
    markdown = render_markdown(result)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if markdown_path:
        markdown_path.write_text(markdown)
    typer.echo(markdown, nl=False)


def _note(message: str) -> None:
    typer.echo(message, err=True)


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def main() -> None:
    logging.basicConfig(level=os.environ.get("LTX_LOG_LEVEL", "WARNING"))
    app()
