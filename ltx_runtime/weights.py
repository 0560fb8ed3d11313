"""Weights on local disk: weights.lock, folder checks and the component loader.

Nothing here touches the network (ltx_runtime.hub does): folders are read with `local_files_only=True`, and a folder
that is missing, incomplete, or not the model it claims to be is refused with a `WeightsError` that says what is wrong.

weights.lock (JSON) pins each model's files:

    {"format": 1,
     "models": {"<model id>": {
         "folder": "<folder name under a weights root>",
         "complete": <true once `weights lock` has listed every source from the hub>,
         "sources": [{
             "repo": "<hub repo>",
             "revision": "<40-hex commit, or null until `weights lock` resolves ref>",
             "ref": "<branch `weights lock` resolves when revision is null; optional, default main>",
             "into": "<subfolder of the model folder the files land in; optional, default the folder itself>",
             "include": ["<glob of repo paths this source provides (fnmatch, as huggingface_hub allow_patterns);
                          optional, default the paths listed in files>"],
             "note": "<why this source, where its facts came from; optional>",
             "files": [{"path": "<path in the repo; in the model folder: into/path>",
                        "size": <bytes or null>, "sha256": "<hex or null>",
                        "note": "<where a fact came from, optional>"}]}]}}}

A null size or hash means it was not known when the entry was written; `weights pull` records it on first download
(trust on first use). The loader checks that every listed file is present and, where the size is known, that it
matches; hashing 40 GB at every start is left to `weights verify`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .catalog import VIDEO_DECODERS, ModelSpec, video_decoder_for
from .diffusion_vae import DIFFUSION_DECODER_FOLDER
from .loras import LORA_FOLDER, default_lock_path
from .official import is_official_folder, load_diffusion_decoder, load_official, official_files

LOCK_FORMAT = 1
DEFAULT_REF = "main"
TINY = "tiny"
"""`--weights tiny` (LTX_WEIGHTS_DIR=tiny): random demo weights, built on first use, instead of a folder."""
PIPELINE_CLASS = "LTX2Pipeline"
DISTILLED_LORA = "distilled"
"""Adapter name of the distilled LoRA that the guided recipes switch on for stage 2."""
REQUIRED_COMPONENTS = (
    "scheduler", "text_encoder", "tokenizer", "connectors", "transformer", "vae", "audio_vae", "vocoder",
    "latent_upsampler",
)  # fmt: skip


class WeightsError(RuntimeError):
    """The weights folder cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class LockedFile:
    path: str
    """Path in the repository."""
    local_path: str
    """Path in the model folder: the source's `into` subfolder joined with `path`."""
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class LockedSource:
    repo: str
    revision: str | None
    ref: str
    into: str
    include: tuple[str, ...]
    files: tuple[LockedFile, ...]


@dataclass(frozen=True)
class LockEntry:
    model_id: str
    folder: str
    complete: bool
    sources: tuple[LockedSource, ...]

    @property
    def files(self) -> tuple[LockedFile, ...]:
        return tuple(item for source in self.sources for item in source.files)


def read_lock_data(path: Path) -> dict:
    """The lock file as JSON, after checking its format."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise WeightsError(f"cannot read weights lock {path}: {error}") from None
    if data.get("format") != LOCK_FORMAT:
        raise WeightsError(f"weights lock {path} has format {data.get('format')!r}; this version reads {LOCK_FORMAT}")
    return data


def write_lock_data(path: Path, data: dict) -> None:
    """Replace the lock file atomically (indent 2, keys in their order), so an interrupted write leaves the old one."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2) + "\n")
        temporary.replace(path)
    except OSError as error:
        raise WeightsError(f"cannot write weights lock {path}: {error}; pass --lock with a writable copy") from None


def read_lock(path: Path | None = None) -> dict[str, LockEntry]:
    """The models weights.lock pins: the one at `path`, default `default_lock_path()`."""
    path = path if path is not None else default_lock_path()
    entries = {}
    for model_id, entry in read_lock_data(path).get("models", {}).items():
        sources = tuple(_source(path, source) for source in entry.get("sources", []))
        entries[model_id] = LockEntry(model_id, entry["folder"], bool(entry.get("complete")), sources)
    return entries


def _source(lock_path: Path, source: dict) -> LockedSource:
    into = source.get("into", "")
    files = []
    for item in source.get("files", []):
        local_path = str(PurePosixPath(into, item["path"]))
        if PurePosixPath(local_path).is_absolute() or ".." in PurePosixPath(local_path).parts:
            raise WeightsError(f"weights lock {lock_path}: {local_path!r} is not a path inside a model folder")
        files.append(LockedFile(item["path"], local_path, item.get("size"), item.get("sha256")))
    return LockedSource(
        repo=source["repo"],
        revision=source.get("revision"),
        ref=source.get("ref", DEFAULT_REF),
        into=into,
        include=tuple(source.get("include", ())),
        files=tuple(files),
    )


def resolve_folder(weights: Path, spec: ModelSpec) -> Path:
    """`weights` is either one model's folder (it holds model_index.json) or a root with one folder per model."""
    weights = Path(weights).expanduser()
    if (weights / "model_index.json").is_file() or is_official_folder(weights):
        return weights
    return weights / spec.weights


def check_folder(
    folder: Path, spec: ModelSpec, lock: dict[str, LockEntry] | None = None, video_decoder: str = VIDEO_DECODERS[0]
) -> None:
    """Refuse a folder that cannot hold `spec`'s weights for the `video_decoder` setting, before any large file is
    read."""
    diffusion = video_decoder_for(spec.architecture, video_decoder) == "diffusion"
    if not folder.is_dir():
        raise WeightsError(
            f"no weights folder for {spec.id} at {folder}; pass --weights DIR (a diffusers-layout LTX-2 folder "
            f"or a root holding {spec.weights}/), or --weights tiny for random demo weights"
        )
    if is_official_folder(folder):
        try:
            official_files(folder, dev=spec.needs_distilled_lora, diffusion_decoder=diffusion)
        except FileNotFoundError as error:
            raise WeightsError(f"{error} (a folder of Lightricks' single files, as ltx-pipelines and ComfyUI keep them)")
        entry = (lock or {}).get(spec.id)
        if entry is not None:
            _check_against_lock(folder, entry)
        return
    index_path = folder / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as error:
        raise WeightsError(f"{folder} is not a diffusers pipeline folder: cannot read model_index.json ({error})")
    if index.get("_class_name") != PIPELINE_CLASS:
        raise WeightsError(
            f"{folder} holds a {index.get('_class_name')!r} pipeline; LTX-2 weights are a {PIPELINE_CLASS} folder"
        )
    required = (REQUIRED_COMPONENTS + ((LORA_FOLDER,) if spec.needs_distilled_lora else ())
                + ((DIFFUSION_DECODER_FOLDER,) if diffusion else ()))  # fmt: skip
    missing = [name for name in required if not (folder / name).is_dir()]
    if missing:
        raise WeightsError(f"weights folder {folder} lacks the component folder(s): {', '.join(missing)}")
    entry = (lock or {}).get(spec.id)
    if entry is not None:
        _check_against_lock(folder, entry)


def _check_against_lock(folder: Path, entry: LockEntry) -> None:
    problems = []
    for item in entry.files:
        path = folder / item.local_path
        if not path.is_file():
            problems.append(f"{item.local_path} is missing")
        elif item.size is not None and path.stat().st_size != item.size:
            problems.append(f"{item.local_path} is {path.stat().st_size} bytes, weights.lock says {item.size}")
    if problems:
        raise WeightsError(
            f"weights folder {folder} does not match weights.lock for {entry.model_id}: " + "; ".join(problems)
        )


def _one_lora_file(lora_folder: Path) -> Path:
    files = sorted(lora_folder.glob("*.safetensors"))
    if len(files) != 1:
        raise WeightsError(f"{lora_folder} must hold exactly one .safetensors file (the distilled LoRA), found {len(files)}")
    return files[0]


def _load_distilled_lora(pipeline, lora_file: Path) -> None:
    """Load the LoRA once into the resident transformer, switched off until a recipe's stage 2 switches it on."""
    pipeline.load_lora_weights(str(lora_file.parent), weight_name=lora_file.name, adapter_name=DISTILLED_LORA)
    pipeline.disable_lora()


@dataclass
class Components:
    """Every module of one model, loaded once; the recipes build their pipelines around these same objects."""

    folder: Path
    pipeline: object  # diffusers LTX2Pipeline: scheduler, text encoder, tokenizer, connectors, transformer, VAEs, vocoder
    latent_upsampler: object  # diffusers LTX2LatentUpsamplerModel
    prompt_cache: object = None  # recipes.PromptCache, set by the engine with the speed levers
    diffusion_decoder: object = None
    """LTX-2.5's diffusion video decoder (diffusers LTX2VideoDiffusionDecoderModel) when the `video_decoder` setting
    picks it (diffusion_decode.py); None: the conv VAE (`pipeline.vae`) decodes."""


FLOAT32_VOCODERS = ("LTX2VocoderWithBWE",)
"""Vocoders kept in float32 whatever the model's dtype: the official LTX-2.3 pipeline runs its bandwidth-extension
vocoder in float32 (bf16 costs about 0.33 relative L2 error; ltx2-models.md section 2a, item 4)."""


def load_components(
    folder: Path, spec: ModelSpec, dtype, lock: dict[str, LockEntry] | None = None, video_decoder: str = VIDEO_DECODERS[0]
) -> Components:
    """Check `folder` for `spec`, load every module once in host memory (the distilled LoRA too, switched off, when
    the folder has one; the diffusion decoder when `video_decoder` picks it for the model) and check that the loaded
    modules fit `spec`. Placing them on a device is memory.place's job.

    The transformer is loaded with `perturbed_attn=True` whatever its config says: diffusers' LTX-2.0 config has
    False, which makes STG (the Pro recipe's spatio-temporal guidance) a no-op; the weights are the same either way
    (ltx2-models.md section 2a, item 2)."""
    import torch
    from diffusers import LTX2Pipeline, LTX2VideoDiffusionDecoderModel, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

    check_folder(folder, spec, lock, video_decoder)
    diffusion = video_decoder_for(spec.architecture, video_decoder) == "diffusion"
    decoder = None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: nothing below may reach for a hub
    try:
        if is_official_folder(folder):
            pipeline, upsampler, lora = load_official(folder, spec.needs_distilled_lora, dtype)
            if lora is not None:
                _load_distilled_lora(pipeline, lora)
            if diffusion:
                path = official_files(folder, spec.needs_distilled_lora, diffusion_decoder=True)["diffusion_vae"]
                decoder = load_diffusion_decoder(path, dtype)
        else:
            vocoder_class = json.loads((folder / "model_index.json").read_text()).get("vocoder", [None, None])[1]
            dtypes = {"default": dtype, **({"vocoder": torch.float32} if vocoder_class in FLOAT32_VOCODERS else {})}
            transformer = LTX2VideoTransformer3DModel.from_pretrained(
                folder / "transformer", dtype=dtype, local_files_only=True, perturbed_attn=True
            )
            pipeline = LTX2Pipeline.from_pretrained(folder, transformer=transformer, dtype=dtypes, local_files_only=True)
            upsampler = LTX2LatentUpsamplerModel.from_pretrained(folder / "latent_upsampler", dtype=dtype, local_files_only=True)
            if (folder / LORA_FOLDER).is_dir():
                _load_distilled_lora(pipeline, _one_lora_file(folder / LORA_FOLDER))
            if diffusion:
                decoder = LTX2VideoDiffusionDecoderModel.from_pretrained(
                    folder / DIFFUSION_DECODER_FOLDER, dtype=dtype, local_files_only=True
                ).eval()
    except WeightsError:
        raise
    except Exception as error:  # whatever a malformed file trips over, the caller gets this loader's error
        raise WeightsError(f"cannot load the weights in {folder}: {type(error).__name__}: {error}") from error
    if decoder is not None:
        from .diffusion_decode import prepare

        prepare(decoder)
    components = Components(folder=folder, pipeline=pipeline, latent_upsampler=upsampler, diffusion_decoder=decoder)
    check_components(components, spec)
    pipeline.set_progress_bar_config(disable=True)
    upsampler.eval()
    return components


def check_components(components: Components, spec: ModelSpec) -> None:
    """Refuse loaded modules that are not `spec`'s model (several model ids may share one folder)."""
    pipeline, folder = components.pipeline, components.folder
    rate = pipeline.vocoder.config.output_sampling_rate
    if rate != spec.audio_sample_rate:
        raise WeightsError(
            f"the weights in {folder} have a {rate} Hz vocoder; {spec.id} ({spec.name}) needs {spec.audio_sample_rate} Hz, "
            "so these are weights for another model"
        )
    ratios = (pipeline.vae_spatial_compression_ratio, pipeline.vae_temporal_compression_ratio)
    if ratios != (32, 8):
        raise WeightsError(f"the video VAE in {folder} compresses {ratios[0]}x/{ratios[1]}x; LTX-2 needs 32x/8x")
    upsampler_channels = components.latent_upsampler.config.in_channels
    if upsampler_channels != pipeline.transformer.config.in_channels:
        raise WeightsError(
            f"latent_upsampler in {folder} takes {upsampler_channels} channels, "
            f"the transformer's latents have {pipeline.transformer.config.in_channels}"
        )
