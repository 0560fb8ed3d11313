"""The `ltx-runtime` command line."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .catalog import MODELS, get_model
from .media import QUALITY_DEFAULT, OutputFormat

app = typer.Typer(help="Self-hosted inference runtime for Lightricks' LTX-2 video+audio models.", no_args_is_help=True)
weights_app = typer.Typer(help="Manage model weights on local disk.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")
console = Console(stderr=True)

DEFAULT_WEIGHTS = os.environ.get("LTX_WEIGHTS_DIR", str(Path.home() / ".cache" / "ltx-runtime" / "weights"))
TINY_WARNING = "[bold yellow]WARNING: tiny random weights (demo/test mode): the video and audio are noise.[/]"


@app.command()
def generate(
    prompt: str = typer.Option(..., "--prompt", "-p", help="What the clip shows (2-10000 characters)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file; its suffix picks the format if --format is not given."),
    model: str = typer.Option("lightricks:2@1", "--model", "-m", help="Model id (see `ltx-runtime models`)."),
    width: Optional[int] = typer.Option(None, help="Width in pixels (default: the model's, 1920 for hosted models)."),
    height: Optional[int] = typer.Option(None, help="Height in pixels (default: the model's, 1080 for hosted models)."),
    duration: Optional[float] = typer.Option(None, help="Seconds (default: the model's, 6 for hosted models)."),
    fps: Optional[int] = typer.Option(None, help="Frames per second (default: the model's, 25 for hosted models)."),
    audio: Optional[bool] = typer.Option(None, "--audio/--no-audio", help="Generate a stereo soundtrack (default: the model's)."),
    seed: Optional[int] = typer.Option(None, help="Random seed; the same seed gives the same clip (default: random)."),
    output_format: Optional[OutputFormat] = typer.Option(None, "--format", help="mp4, webm or mov (default: from the output suffix, else mp4)."),
    quality: int = typer.Option(QUALITY_DEFAULT, help="20-99, mapped onto the encoder's CRF (higher is better, larger)."),
    image: Optional[Path] = typer.Option(None, "--image", help="First-frame image (PNG, JPEG or WEBP), resized and centre-cropped to the frame.", exists=True, dir_okay=False),
    weights: str = typer.Option(DEFAULT_WEIGHTS, help="A model folder, a root of per-model folders, or 'tiny' for random demo weights. Env: LTX_WEIGHTS_DIR."),
) -> None:
    """Generate one clip and write it to --output."""
    from .engine import Engine, GenerationRequest, RequestError, validate_request
    from .weights import WeightsError

    try:
        spec = get_model(model)
    except KeyError as error:
        _fail(f"--model: {error}", code=2)
    if output_format is None:
        suffix = output.suffix.lower().lstrip(".")
        output_format = OutputFormat(suffix) if suffix in {f.value for f in OutputFormat} else OutputFormat.MP4
    request = GenerationRequest(
        model=spec.id,
        prompt=prompt,
        width=width if width is not None else spec.default_size[0],
        height=height if height is not None else spec.default_size[1],
        duration=duration if duration is not None else spec.default_duration,
        fps=fps if fps is not None else spec.default_fps,
        audio=spec.audio_default if audio is None else audio,
        seed=seed,
        output_format=output_format,
        quality=quality,
        image=image.read_bytes() if image else None,
    )
    try:
        validate_request(request)
    except RequestError as error:
        _fail(f"--{error.parameter}: {error}", code=2)
    engine = Engine(weights)
    if engine.uses_tiny_weights:
        console.print(TINY_WARNING)
    with Progress(
        TextColumn("denoising"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as progress_bar:
        task = progress_bar.add_task("denoising", total=None)
        try:
            result = engine.generate(
                request, output, progress=lambda done, total: progress_bar.update(task, completed=done, total=total)
            )
        except RequestError as error:
            _fail(f"--{error.parameter}: {error}", code=2)
        except WeightsError as error:
            _fail(str(error))
    audio_text = f"{result.sample_rate} Hz stereo audio" if result.has_audio else "no audio"
    stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.timings.items() if name != "total")
    typer.echo(
        f"wrote {result.path}: {result.width}x{result.height}, {result.frames} frames at {result.fps} fps, "
        f"{result.duration:g} s, {audio_text}, {result.output_format.value}, seed {result.seed}, "
        f"{result.timings['total']:.1f} s ({stages})"
    )


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Address to listen on (default: 127.0.0.1; env LTX_HOST)."),
    port: Optional[int] = typer.Option(None, help="Port (default: 8000; env LTX_PORT)."),
    public_url: Optional[str] = typer.Option(None, help="Base of the video URLs given to clients (default: http://HOST:PORT; env LTX_PUBLIC_URL)."),
    demo: bool = typer.Option(False, "--demo", help="Serve tiny random weights (automatic when no CUDA GPU is present)."),
) -> None:
    """Run the Runware-compatible server: REST and WebSocket videoInference on /v1. Settings: LTX_* variables."""
    from server.main import serve as run_server  # the server imports the library, never the other way round

    run_server(host=host, port=port, public_url=public_url, demo=demo)


@app.command("models")
def list_models() -> None:
    """List the model ids this runtime serves, with their sizes, durations and frame rates."""
    for spec in MODELS.values():
        note = " [demo and tests only]" if spec.demo_only else ""
        audio = ".".join(spec.audio_flag)
        typer.echo(
            f"{spec.id}  {spec.name}{note}\n"
            f"    sizes: {spec.describe_sizes()}\n"
            f"    durations: {', '.join(map(str, spec.durations))} s (default {spec.default_duration}); "
            f"fps: {', '.join(map(str, spec.fps_values))} (default {spec.default_fps})\n"
            f"    audio: {audio} (default {str(spec.audio_default).lower()}), {spec.audio_sample_rate} Hz stereo; "
            f"recipe: {spec.recipe.value}; weights: {spec.weights}"
        )


@weights_app.command("build-tiny")
def build_tiny(
    folder: Path = typer.Argument(..., help="Folder to write (replaced if it exists)."),
    architecture: str = typer.Option("ltx-2", help="ltx-2 (Fast, Pro) or ltx-2.3 (LTX-2.3: gated attention, 48 kHz vocoder)."),
) -> None:
    """Write tiny random LTX-2 weights in the real diffusers layout, offline (for tests and demo mode)."""
    from .tiny import ARCHITECTURES, build_tiny_weights

    if architecture not in ARCHITECTURES:
        _fail(f"--architecture: choose one of {', '.join(ARCHITECTURES)}", code=2)
    build_tiny_weights(folder, architecture)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    typer.echo(f"wrote tiny {architecture} weights to {folder} ({size / 1e6:.1f} MB)")


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def main() -> None:
    logging.basicConfig(level=os.environ.get("LTX_LOG_LEVEL", "WARNING"))
    app()
