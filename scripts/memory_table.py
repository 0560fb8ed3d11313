"""Print docs/memory.md's tables: the memory profile and VAE tiles each hosted model gets per GPU, how every hosted
(model, size, duration, fps) is generated and what it costs, and LTX-2.5 at 1080p and 4K with each video decoder.
LTX-2.5 counts with the decoder `auto` picks on a GPU (the diffusion decoder) unless a column says otherwise.

    .venv/bin/python scripts/memory_table.py > /tmp/table.md

tests/unit/test_memory_doc.py checks that docs/memory.md carries exactly this output (between its markers).
"""

from __future__ import annotations

from ltx_runtime.catalog import (
    DIFFUSION_DECODER_ARCHITECTURES,
    MODELS,
    VIDEO_DECODERS,
    SizeRange,
    choose_video_decoder,
)
from ltx_runtime.geometry import plan_generation
from ltx_runtime.admission import GIB, MemoryProfile, choose_profile, choose_tiles, default_clip, estimate
from ltx_runtime.memory import budget_for

RANGE_SAMPLE = (((1280, 720), (1920, 1080), (1080, 1920), (2560, 1440), (3840, 2160)), (5, 10, 20), (24, 50))
"""What the table shows of a model that takes any size, duration and fps in ranges (lightricks:ltx@2)."""
GPUS = (("H200 141 GB", 139.8), ("H100 80 GB", 79.1), ("48 GB", 44.5), ("24 GB", 23.6))
ON_GPU = choose_video_decoder("auto", on_gpu=True)
DECODER_SAMPLE = (((1920, 1080), (3840, 2160)), (2, 8, 20), (25, 50))
"""The sizes, durations and fps of the decoder table."""


def profile_rows() -> list[str]:
    """Per hosted model and GPU: the profile `auto` picks (admission.choose_profile) and the VAE tiles the `vae_tiles`
    lever plans for the model's default clip from a prompt (admission.choose_tiles)."""
    lines = ["| model | default clip | " + " | ".join(name for name, _ in GPUS) + " |", "|" + "---|" * (len(GPUS) + 2)]
    for spec in MODELS.values():
        if spec.demo_only:
            continue
        clip = default_clip(spec)
        cells = []
        for _, gib in GPUS:
            budget = budget_for(int(gib * GIB), None)
            profile = choose_profile(spec, budget, ON_GPU)
            planned = choose_tiles(spec, clip, profile, budget, video_decoder=ON_GPU)[0]
            decode = "diffusion decoder" if planned.diffusion_decoder else str(planned.tiles)
            cells.append(f"`{profile.value}`, {decode}")
        about = f"{clip.width}×{clip.height}, {clip.duration:g} s, {clip.fps} fps"
        lines.append(f"| {spec.id} | {about} | " + " | ".join(cells) + " |")
    return lines


def rows() -> list[str]:
    header = (
        "| model | size | s | fps | generated as | latents (F×H×W) | stage-1 tokens | stage-2 tokens | audio latents "
        "| resident GiB (text / image) | fp8 GiB (text / image) | low GiB (text / image) |"
    )
    lines = [header, "|" + "---|" * 12]
    # Each GiB cell: from a prompt / from a first-frame image (per-token timesteps).
    for spec in MODELS.values():
        if spec.demo_only:
            continue
        sizes, durations, rates = (
            RANGE_SAMPLE if isinstance(spec.sizes, SizeRange) else (spec.sizes, spec.durations, spec.fps_values)
        )
        for width, height in sizes:
            for duration in durations:
                for fps in rates:
                    plan = plan_generation(width, height, duration, fps, spec.audio_sample_rate)
                    latent_h, latent_w = plan.gen_height // 32, plan.gen_width // 32
                    stage_1 = plan.latent_frames * (latent_h // 2) * (latent_w // 2)
                    audio_latents = round(plan.gen_frames / fps * 25)
                    peaks = [
                        f"{estimate(spec, plan, profile, video_decoder=ON_GPU).peak / GIB:.0f} / "
                        f"{estimate(spec, plan, profile, image_to_video=True, video_decoder=ON_GPU).peak / GIB:.0f}"
                        for profile in MemoryProfile
                    ]
                    lines.append(
                        f"| {spec.id} | {width}×{height} | {duration:g} | {fps} | {plan.gen_width}×{plan.gen_height}, "
                        f"{plan.gen_frames} frames | {plan.latent_frames}×{latent_h}×{latent_w} | {stage_1:,} "
                        f"| {plan.stage2_tokens:,} | {audio_latents} | " + " | ".join(peaks) + " |"
                    )
    return lines


def decoder_rows() -> list[str]:
    """LTX-2.5 from a prompt at 1080p and 4K: per profile, the peak with each video decoder, and what the decode
    itself takes beyond the weights."""
    decoders = " / ".join(VIDEO_DECODERS)
    header = (f"| model | size | s | fps | decode GiB ({decoders}) | "
              + " | ".join(f"{profile.value} GiB ({decoders})" for profile in MemoryProfile) + " |")  # fmt: skip
    lines = [header, "|" + "---|" * (5 + len(MemoryProfile))]
    sizes, durations, rates = DECODER_SAMPLE
    for spec in MODELS.values():
        if spec.demo_only or spec.architecture not in DIFFUSION_DECODER_ARCHITECTURES:
            continue
        for width, height in (size for size in sizes if size in spec.sizes):
            for duration in durations:
                for fps in (rate for rate in rates if rate in spec.fps_values):
                    plan = plan_generation(width, height, duration, fps, spec.audio_sample_rate)
                    needed = {(profile, decoder): estimate(spec, plan, profile, video_decoder=decoder)
                              for profile in MemoryProfile for decoder in VIDEO_DECODERS}  # fmt: skip
                    resident = [needed[MemoryProfile.RESIDENT, decoder] for decoder in VIDEO_DECODERS]
                    decode = " / ".join(f"{(each.decoding - each.encoding) / GIB:.0f}" for each in resident)
                    peaks = [" / ".join(f"{needed[profile, decoder].peak / GIB:.0f}" for decoder in VIDEO_DECODERS)
                             for profile in MemoryProfile]  # fmt: skip
                    about = f"| {spec.id} | {width}×{height} | {duration} | {fps} | {decode} | "
                    lines.append(about + " | ".join(peaks) + " |")
    return lines


if __name__ == "__main__":
    print("\n".join(profile_rows()))
    print()
    print("\n".join(rows()))
    print()
    print("\n".join(decoder_rows()))
