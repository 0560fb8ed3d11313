"""The benchmark harness behind `ltx-runtime bench`: plain diffusers against ltx-runtime's optimized path, per stage.

For each model and each configuration (speed.py: `plain` is diffusers as documented, `optimized` every lever that
works on this device, or one lever at a time with `--per-lever`), a fresh engine gets the model's components, runs
`warmup` clips that are not counted (compilation, lazy initialisation, allocator growth), then `repeats` clips of
the requested size, and reports per stage the median, minimum and maximum seconds, the peak memory and the levers it
applied.

Weights: `random` builds the real architectures (fullsize.py) with random weights directly on the GPU, no download;
`tiny` loads the tiny demo weights (tiny.py), which is how the code path is exercised on a CPU. Every configuration
gets freshly built components from the same seed, hence identical weights: levers such as compile and fp8 change the
modules in place, and two full-size copies (2 x 68 GB) do not fit side by side on one GPU.

Every clip of a configuration has a prompt of its own and the same seed, so the prompt cache never hits: text
encoding is always measured cold. A quality guard compares each configuration's first measured clip with plain's
(same weights, prompt and seed): the PSNR of the decoded frames and the relative L2 distance of the decoded audio.
The files are H.264 at the requested quality, so the encoder's own loss bounds what the PSNR can show; the guard
reports that floor too (the plain clip's frames encoded once more at the same settings).
"""

from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from itertools import zip_longest
from pathlib import Path

import numpy as np
import torch

from . import media
from .catalog import get_model
from .engine import Engine, pick_device
from .admission import GIB, MemoryProfile
from .memory import BUDGET_FRACTION, free_cached_memory
from .request import GenerationRequest, RequestError, validate_request
from .speed import SpeedOptions, applied
from .weights import DISTILLED_LORA, Components

PLAIN = SpeedOptions.plain()
LEVERS = {
    "attention=cudnn": replace(PLAIN, attention="cudnn"),
    "attention=flash3": replace(PLAIN, attention="flash3"),
    "compile=on": replace(PLAIN, compile="on"),
    "fp8_matmul=on": replace(PLAIN, fp8_matmul="on"),
    "unmasked_cross_attention=on": replace(PLAIN, unmasked_cross_attention="on"),
    "fp8_attention=on": replace(PLAIN, fp8_attention="on"),
    "cuda_graphs=on": replace(PLAIN, compile="on", cuda_graphs="on"),
    "vae_compile=on": replace(PLAIN, vae_compile="on"),
    "vae_tiles=on": replace(PLAIN, vae_tiles="on"),
    "gpu_colour=on": replace(PLAIN, gpu_colour="on"),
}
"""Plain diffusers plus one lever. The prompt cache is not among them: the bench never repeats a prompt."""
CONFIGS = {"plain": PLAIN, **LEVERS, "optimized": SpeedOptions()}

STAGES = (
    "text encoding", "stage 1", "upsample", "stage 2", "audio VAE", "vocoder", "VAE decode", "frames to uint8",
    "encoding beyond the decode", "end to end",
)  # fmt: skip
PROMPT = "a lighthouse on a rocky coast at dusk, waves breaking, gulls calling"
WEIGHT_SEED = 0
LORA_RANK = 384
PSNR_THRESHOLD_DB = 35.0
PSNR_THRESHOLD_FP8_DB = 25.0
AUDIO_THRESHOLD = 0.1
AUDIO_THRESHOLD_FP8 = 0.3

Log = Callable[[str], None]


class BenchError(ValueError):
    """A benchmark that cannot run as asked (the message says why); nothing was measured."""


@dataclass(frozen=True)
class BenchOptions:
    models: tuple[str, ...] = ("lightricks:2@1",)
    width: int = 1920
    height: int = 1080
    duration: float = 8
    fps: int = 25
    audio: bool = True
    weights: str = "random"
    """random: full-size random weights on the GPU; tiny: the tiny demo weights."""
    configs: tuple[str, ...] = ("plain", "optimized")
    repeats: int | None = None
    """None: 3 on CUDA, 1 on the CPU."""
    warmup: int = 1
    memory_fraction: float | None = None
    """The 24 GB-class stand-in: cap torch's CUDA allocator at this share of the GPU, memory profile `low`."""
    seed: int = 42


def stage_times(timings: dict[str, float]) -> dict[str, float]:
    """One clip's rows of the table from the engine's timings: the VAE's and vocoder's shares split out of the stages
    that contain them. ffmpeg encodes on a thread of its own while the VAE decodes (media.py): `encoding beyond the
    decode` is only what it takes after the last frame was handed over (near zero when it keeps up)."""
    stages = {
        "text encoding": timings["text_encoding"],
        "stage 1": timings["stage_1"],
        "upsample": timings["upsample"],
        "stage 2": timings["stage_2"],
        "VAE decode": timings["vae_decode"],
        "frames to uint8": timings["to_uint8"],
        "encoding beyond the decode": timings["encode_tail"],
        "end to end": timings["total"],
    }
    if "audio_decode" in timings:
        stages["audio VAE"] = timings["audio_decode"] - timings["vocoder"]
        stages["vocoder"] = timings["vocoder"]
    return {stage: stages[stage] for stage in STAGES if stage in stages}


def summarize(runs: list[dict[str, float]]) -> dict[str, dict]:
    """Per stage: median, min, max and every run's seconds."""
    return {
        stage: {
            "median": statistics.median(run[stage] for run in runs),
            "min": min(run[stage] for run in runs),
            "max": max(run[stage] for run in runs),
            "runs": [run[stage] for run in runs],
        }
        for stage in runs[0]
    }


def speedups(reference: dict[str, dict], stages: dict[str, dict]) -> dict[str, float]:
    """reference median / median per stage: above 1 is faster than the reference."""
    return {
        stage: reference[stage]["median"] / stats["median"]
        for stage, stats in stages.items()
        if stage in reference and stats["median"] > 0
    }


def run_bench(options: BenchOptions, command: str, log: Log = lambda message: None) -> dict:
    """Run the benchmark; return the result as a JSON-ready dict (render it with `render_markdown`)."""
    device, dtype = pick_device()
    unknown = [name for name in options.configs if name not in CONFIGS]
    if unknown:
        raise BenchError(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if options.weights not in ("random", "tiny"):
        raise BenchError("--weights: choose random (full-size, on the GPU) or tiny")
    if device.type != "cuda" and options.weights == "random":
        raise BenchError(
            "full-size random weights need a CUDA GPU (19-22 B parameters); on this machine run the same code path "
            "with --weights tiny and a tiny model such as ltx-runtime:tiny@1"
        )
    if options.memory_fraction is not None:
        if device.type != "cuda":
            raise BenchError("--memory-fraction caps torch's CUDA allocator and needs a CUDA GPU; nothing was run")
        if not 0 < options.memory_fraction <= 1:
            raise BenchError("--memory-fraction: a share of the GPU's memory, above 0 and at most 1")
    requests = [_request(model, options) for model in options.models]

    profile, budget_gib = None, None  # the engine's defaults: chosen from the GPU's memory
    total_gib = torch.cuda.get_device_properties(device).total_memory / GIB if device.type == "cuda" else None
    if options.memory_fraction is not None:
        torch.cuda.set_per_process_memory_fraction(float(options.memory_fraction))  # on the current device
        profile, budget_gib = MemoryProfile.LOW, options.memory_fraction * total_gib * BUDGET_FRACTION
    repeats = options.repeats or (3 if device.type == "cuda" else 1)
    configs = sorted(dict.fromkeys(options.configs), key=lambda name: name != "plain")  # plain first: the reference

    models = []
    with tempfile.TemporaryDirectory(prefix="ltx-bench-") as scratch:
        workdir = Path(scratch)
        for request in requests:
            results, failed = [], []
            for name in configs:
                engine = Engine(options.weights, lock={}, memory_profile=profile, memory_budget_gib=budget_gib,
                                speed_options=CONFIGS[name])  # fmt: skip
                try:
                    results.append(_run_config(name, engine, request, options, repeats, workdir, log))
                except Exception as error:  # noqa: BLE001 (a lever that breaks, or an OOM, must not lose the rest)
                    failed.append({"name": name, "error": f"{type(error).__name__}: {error}"})
                    log(f"{request.model} {name}: failed: {failed[-1]['error']}")
                del engine
                _release()
            models.append(_model_result(request, results, failed, workdir))

    cuda = device.type == "cuda"
    cpu = f"CPU ({platform.machine()}, {os.cpu_count()} cores): a smoke run of the code path, not a performance figure"
    return {
        "command": command,
        "measured_on": torch.cuda.get_device_name(device) if cuda else cpu,
        "machine": _machine(device),
        "versions": _versions(),
        "device": device.type,
        "dtype": str(dtype).removeprefix("torch."),
        "request": {
            "width": options.width,
            "height": options.height,
            "duration": options.duration,
            "fps": options.fps,
            "audio": options.audio,
            "seed": options.seed,
            "output_format": requests[0].output_format.value,
            "quality": requests[0].quality,
            "weights": options.weights,
        },
        "warmup": options.warmup,
        "repeats": repeats,
        "memory": {
            "profile": profile.value if profile else None,  # None: the engine's choice, recorded per configuration
            "fraction": options.memory_fraction,
            "cap_gib": options.memory_fraction * total_gib if options.memory_fraction else None,
            "budget_gib": budget_gib,
        },
        "models": models,
        "notes": _notes(options, cuda, repeats),
    }


def _request(model_id: str, options: BenchOptions) -> GenerationRequest:
    try:
        spec = get_model(model_id)
        request = GenerationRequest(
            model=spec.id, prompt=PROMPT, width=options.width, height=options.height, duration=options.duration,
            fps=options.fps, audio=options.audio, seed=options.seed,
        )  # fmt: skip
        validate_request(request)
    except (KeyError, RequestError) as error:
        raise BenchError(f"{model_id}: {error}") from None
    if options.weights == "random" and spec.demo_only:
        raise BenchError(f"{model_id} exists on tiny weights only; use --weights tiny")
    return request


def _run_config(name: str, engine: Engine, request: GenerationRequest, options: BenchOptions, repeats: int,
                workdir: Path, log: Log) -> dict:  # fmt: skip
    spec = get_model(request.model)
    started = time.perf_counter()
    if options.weights == "tiny":
        components = engine.load(spec.id)
    else:
        # Built on the GPU when everything stays resident there; in host memory when the profile streams it.
        build_on = engine.device if engine.profile_for(spec.id) is MemoryProfile.RESIDENT else torch.device("cpu")
        components = random_components(spec.architecture, spec.needs_distilled_lora, build_on, engine.dtype)
        engine.adopt(spec.id, components)
    setup = time.perf_counter() - started
    levers = engine.levers[components.folder]
    del components
    log(f"{spec.id} {name}: ready in {setup:.1f} s; levers: {levers}")

    warmups = []
    for number in range(1, options.warmup + 1):
        result = engine.generate(replace(request, prompt=f"{PROMPT} (warm-up {number})"), workdir / "scratch.mp4")
        warmups.append(result.timings["total"])
        log(f"{spec.id} {name}: warm-up {number}/{options.warmup}: {warmups[-1]:.2f} s (not counted)")
    runs, peak, retried, tiles = [], 0, 0, []
    guard_file = workdir / f"{spec.id.replace(':', '_')}-{name}.mp4"
    for number in range(1, repeats + 1):
        _reset_peak_memory(engine.device)
        path = guard_file if number == 1 else workdir / "scratch.mp4"
        result = engine.generate(replace(request, prompt=f"{PROMPT} (run {number})"), path)
        peak = max(peak, _peak_memory(engine.device))
        retried += int("retried_frugally" in result.timings)
        tiles = list(dict.fromkeys([*tiles, result.vae_tiles]))
        runs.append(stage_times(result.timings))
        log(f"{spec.id} {name}: run {number}/{repeats}: {result.timings['total']:.2f} s")
    return {
        "name": name,
        "speed_options": asdict(CONFIGS[name]),
        "levers": levers,
        "memory_profile": engine.profile_for(spec.id).value,
        "vae_tiles": tiles,
        "setup_s": setup,
        "warmup_s": warmups,
        "stages": summarize(runs),
        "peak_memory_gib": peak / GIB,
        "retried_frugally": retried,
        "output": str(guard_file),
    }


def _model_result(request: GenerationRequest, results: list[dict], failed: list[dict], workdir: Path) -> dict:
    spec = get_model(request.model)
    reference = next((result for result in results if result["name"] == "plain"), None)
    floor = spread = None
    if reference is not None:
        for result in results:
            result["speedup_vs_plain"] = speedups(reference["stages"], result["stages"])
            if result is not reference:
                result["guard"] = guard(Path(reference["output"]), Path(result["output"]), result["levers"])
        if len(results) > 1:
            floor = encoder_floor_db(Path(reference["output"]), workdir / "re-encoded.mp4", request)
            spread = frame_spread(Path(reference["output"]))
    for result in results:
        del result["output"]  # a temporary file
    return {
        "model": spec.id,
        "name": spec.name,
        "architecture": spec.architecture,
        "recipe": spec.recipe.value,
        "encoder_floor_db": floor,
        "reference_frame_std": spread,
        "configs": results,
        "failed": failed,
    }


def random_components(architecture: str, with_lora: bool, device: torch.device, dtype: torch.dtype) -> Components:
    """Full-size components of `architecture` with random weights from a fixed seed (identical for every
    configuration), plus a random distilled LoRA when the recipe needs one."""
    from .fullsize import build_full_size

    torch.manual_seed(WEIGHT_SEED)
    components = build_full_size(architecture, device, dtype)
    if with_lora:
        add_random_distilled_lora(components.pipeline)
    return components


def add_random_distilled_lora(pipeline, rank: int = LORA_RANK) -> None:
    """A LoRA shaped like ltx-2-19b-distilled-lora-384, loaded as the real one is: adapter "distilled", switched off
    until a guided recipe's stage 2. Rank 384 on every linear layer of the transformer blocks (attention and
    feed-forward): 7.40 GB in bf16 for LTX-2 against the real file's 7.67 GB, 8.09 GB for LTX-2.3 against 7.61 GB.
    Its B matrices are zero, so it costs the real LoRA's compute and leaves the random model's output as it is."""
    state = {}
    for name, module in pipeline.transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("transformer_blocks."):
            like = {"device": module.weight.device, "dtype": module.weight.dtype}
            scale = module.in_features**-0.5
            state[f"transformer.{name}.lora_A.weight"] = torch.randn(rank, module.in_features, **like) * scale
            state[f"transformer.{name}.lora_B.weight"] = torch.zeros(module.out_features, rank, **like)
    pipeline.load_lora_weights(state, adapter_name=DISTILLED_LORA)
    pipeline.disable_lora()


def guard(reference: Path, candidate: Path, levers: dict[str, str]) -> dict:
    """How far `candidate` is from `reference`: PSNR of the decoded frames (None: identical) and the relative L2
    distance of the decoded audio, against thresholds that are looser when fp8 matmuls were applied."""
    fp8 = applied(levers["fp8_matmul"]) or applied(levers.get("fp8_attention", "off"))
    psnr = video_psnr(reference, candidate)
    threshold = PSNR_THRESHOLD_FP8_DB if fp8 else PSNR_THRESHOLD_DB
    audio = audio_distance(reference, candidate)
    audio_threshold = AUDIO_THRESHOLD_FP8 if fp8 else AUDIO_THRESHOLD
    return {
        "reference": "plain",
        "psnr_db": None if math.isinf(psnr) else psnr,
        "identical_frames": math.isinf(psnr),
        "psnr_threshold_db": threshold,
        "audio_rel_l2": audio,
        "audio_threshold": audio_threshold if audio is not None else None,
        "passed": psnr >= threshold and (audio is None or audio <= audio_threshold),
    }


def video_frames(path: Path) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def psnr_db(squared_error: float, values: int) -> float:
    """PSNR of 8-bit values from the summed squared error; infinite when nothing differs."""
    return math.inf if squared_error == 0 else 10 * math.log10(255**2 * values / squared_error)


def video_psnr(reference: Path, candidate: Path) -> float:
    """PSNR (dB) over every decoded rgb24 frame of two files, read a frame at a time."""
    squared, values = 0.0, 0
    for a, b in zip_longest(video_frames(reference), video_frames(candidate)):
        if a is None or b is None:
            raise BenchError(f"{reference.name} and {candidate.name} have different frame counts")
        difference = a.astype(np.int64) - b
        squared += float(np.square(difference).sum())
        values += difference.size
    return psnr_db(squared, values)


def audio_distance(reference: Path, candidate: Path) -> float | None:
    """||candidate - reference|| / ||reference|| over the decoded samples; None without audio."""
    import av

    def samples(path: Path) -> np.ndarray | None:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            frames = [frame.to_ndarray() for frame in container.decode(audio=0)]
            return np.concatenate(frames, axis=1).astype(np.float64)

    a, b = samples(reference), samples(candidate)
    if a is None or b is None:
        return None
    length = min(a.shape[1], b.shape[1])
    a, b = a[:, :length], b[:, :length]
    return float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-12))


def encoder_floor_db(clip: Path, scratch: Path, request: GenerationRequest) -> float | None:
    """PSNR between `clip`'s frames and the same frames encoded once more as the engine encodes them: the encoder's
    own loss on this content, about the most a PSNR between two encoded clips can resolve (None: lossless)."""
    media.encode_clip((frame[None] for frame in video_frames(clip)), None, width=request.width, height=request.height,
                      fps=request.fps, sample_rate=0, output_path=scratch, output_format=request.output_format,
                      quality=request.quality)  # fmt: skip
    psnr = video_psnr(clip, scratch)
    return None if math.isinf(psnr) else psnr


def frame_spread(path: Path) -> float:
    """Standard deviation of every decoded 8-bit value of a clip. Near 0 the clip is flat (random weights can
    saturate), and two flat clips agree whatever the kernels did: the guard then proves nothing."""
    total, squares, values = 0.0, 0.0, 0
    for frame in video_frames(path):
        pixels = frame.astype(np.float64)
        total, squares, values = total + pixels.sum(), squares + np.square(pixels).sum(), values + pixels.size
    return math.sqrt(max(squares / values - (total / values) ** 2, 0.0))


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: torch.device) -> int:
    """Bytes: the CUDA allocator's peak since the last reset, or on the CPU the process's peak resident set (it
    cannot be reset, so it covers everything the process did before too)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _release() -> None:
    """Free a finished configuration's modules before the next one is built (compiled graphs hold them too)."""
    if "torch._dynamo" in sys.modules:
        torch._dynamo.reset()
    free_cached_memory()


def _machine(device: torch.device) -> dict:
    machine = {"cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count()}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        machine.update(gpu=properties.name, gpu_memory_gib=properties.total_memory / GIB,
                       compute_capability=f"{properties.major}.{properties.minor}")  # fmt: skip
    return machine


def _versions() -> dict[str, str | None]:
    import imageio_ffmpeg

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": None if cudnn is None else str(cudnn),
    }
    for package in ("diffusers", "transformers", "peft", "torchao", "av"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None  # not installed
    versions["ffmpeg"] = imageio_ffmpeg.get_ffmpeg_version()
    return versions


def _notes(options: BenchOptions, cuda: bool, repeats: int) -> list[str]:
    notes = [
        (
            f"{options.warmup} warm-up clip(s) per configuration, not counted (compilation, lazy initialisation, "
            f"allocator growth); then {repeats} measured clip(s): medians, with min-max."
        ),
        "Every clip has a prompt of its own, so the prompt cache never hits: text encoding is measured cold.",
        "Speed-up = plain's median / this configuration's median (above 1: faster than plain).",
    ]
    if options.weights == "random":
        notes.append(
            "Weights: the real architectures with random weights (seed 0), built afresh for every configuration; the "
            "guided recipes' distilled LoRA is random too (rank 384 on every block linear layer, B = 0)."
        )
    else:
        notes.append("Weights: the tiny demo weights (tiny.py), not the real architectures.")
    if options.memory_fraction is not None:
        notes.append(
            "24 GB-class stand-in: torch.cuda.set_per_process_memory_fraction caps the allocator on a larger GPU and "
            "the memory profile is `low`; a real 24 GB card has less bandwidth and compute."
        )
    if not cuda:
        notes.append("CPU: every GPU lever falls back to off, and peak memory is the process's peak resident set.")
    return notes


def render_markdown(result: dict) -> str:
    """The result as Markdown: one table per model (stages x configurations, speed-ups against plain), the levers
    each configuration applied, and the quality guard."""
    request = result["request"]
    memory_label = "peak GPU memory GiB (max allocated)" if result["device"] == "cuda" else "peak RSS GiB (process)"
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"Measured on: {result['measured_on']}; {result['device']} {result['dtype']}.",
        "Versions: " + ", ".join(f"{name} {value}" for name, value in result["versions"].items() if value) + ".",
        (
            f"Request: {request['width']}x{request['height']}, {request['duration']:g} s at {request['fps']} fps, "
            f"audio {'on' if request['audio'] else 'off'}, seed {request['seed']}, {request['output_format']} "
            f"quality {request['quality']}, {request['weights']} weights."
        ),
    ]
    memory = result["memory"]
    if memory["fraction"]:
        lines.append(
            f"Memory: the allocator capped at {memory['cap_gib']:.1f} GiB (fraction {memory['fraction']:g}), "
            f"profile {memory['profile']}."
        )
    lines += ["", *[f"- {note}" for note in result["notes"]]]
    for model in result["models"]:
        configs = model["configs"]
        lines += ["", f"### {model['model']}: {model['name']}"]
        if configs:
            lines += ["", *_stage_table(configs, memory_label), "", *_lever_table(configs)]
        retried = [config["name"] for config in configs if config["retried_frugally"]]
        if retried:
            lines += ["", f"Out of memory and retried frugally in some runs: {', '.join(retried)}."]
        lines += [f"\nFailed, not measured: {failure['name']}: {failure['error']}" for failure in model["failed"]]
        if any("guard" in config for config in configs):
            lines += ["", *_guard_table(configs, model["encoder_floor_db"], model["reference_frame_std"])]
    return "\n".join(lines) + "\n"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _stage_table(configs: list[dict], memory_label: str) -> list[str]:
    others = [config for config in configs if "speedup_vs_plain" in config and config["name"] != "plain"]
    header = ["stage", *(f"{config['name']} s" for config in configs)]
    header += [f"speed-up plain / {config['name']}" for config in others]
    lines = [_row(*header), "|---" * len(header) + "|"]
    for stage in STAGES:
        if stage in configs[0]["stages"]:
            seconds = [_seconds(config["stages"][stage]) for config in configs]
            lines.append(_row(stage, *seconds, *(f"{config['speedup_vs_plain'][stage]:.2f}x" for config in others)))
    blank = [""] * len(others)
    lines.append(_row(memory_label, *(f"{config['peak_memory_gib']:.2f}" for config in configs), *blank))
    lines.append(
        _row("setup: weights and levers, not counted", *(f"{config['setup_s']:.1f}" for config in configs), *blank)
    )
    if configs[0]["warmup_s"]:
        warmups = [", ".join(f"{seconds:.1f}" for seconds in config["warmup_s"]) for config in configs]
        lines.append(_row("warm-up clips, not counted", *warmups, *blank))
    return lines


def _lever_table(configs: list[dict]) -> list[str]:
    lines = [_row("lever", *(config["name"] for config in configs)), "|---" * (len(configs) + 1) + "|"]
    for lever in configs[0]["levers"]:
        lines.append(_row(lever, *(config["levers"][lever] for config in configs)))
    lines.append(_row("memory profile", *(config["memory_profile"] for config in configs)))
    lines.append(_row("VAE tiles used", *("; ".join(config["vae_tiles"]) for config in configs)))
    return lines


def _guard_table(configs: list[dict], floor: float | None, spread: float) -> list[str]:
    lines = [
        "Quality guard against plain (same weights, prompt and seed). The encoder's own floor on this content: "
        + ("lossless" if floor is None else f"{floor:.1f} dB")
        + f"; plain's frames vary with a standard deviation of {spread:.1f} (near 0, a flat clip: the guard proves "
        "nothing).",
        "",
        _row("configuration", "video PSNR", "audio rel. L2", "thresholds", "passed"),
        "|---|---|---|---|---|",
    ]
    for config in configs:
        if "guard" not in config:
            continue
        check = config["guard"]
        psnr = "identical" if check["identical_frames"] else f"{check['psnr_db']:.1f} dB"
        audio = "no audio" if check["audio_rel_l2"] is None else f"{check['audio_rel_l2']:.4f}"
        limits = f">= {check['psnr_threshold_db']:g} dB"
        if check["audio_threshold"] is not None:
            limits += f", <= {check['audio_threshold']:g}"
        lines.append(_row(config["name"], psnr, audio, limits, "yes" if check["passed"] else "NO"))
    return lines


def _seconds(stats: dict) -> str:
    if len(stats["runs"]) == 1:
        return f"{stats['median']:.3f}"
    return f"{stats['median']:.3f} ({stats['min']:.3f}-{stats['max']:.3f})"
