"""User LoRAs: the ids an operator offers, and where their files are.

A LoRA is one .safetensors file in the `loras/` folder of the weights root (as ComfyUI users keep them; in demo mode,
of the tiny weights' root), in diffusers' or Lightricks' key format. A request names it by an id that the operator
lists, in weights.lock (`"loras": {...}`) or in the server's settings (`LTX_LORAS`, the same JSON, which wins):

    {"<id>": {"file": "<file name in loras/>", "architecture": "ltx-2" | "ltx-2.3", "note": "<optional>"}}

The architecture is declared, not guessed, so that an API node without the files can refuse a LoRA for another
model before it acknowledges the task; the worker then loads the file and refuses one whose tensors do not fit.
Kept free of torch: the API server validates with it.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPOSITORY_LOCK_PATH = Path(__file__).resolve().parent.parent / "weights.lock"
"""weights.lock at the repository root; an installed copy (the Docker image) names its own in LTX_WEIGHTS_LOCK."""


def default_lock_path() -> Path:
    """The weights.lock read when none is named: LTX_WEIGHTS_LOCK, read at each call (so a value set after import
    counts), else REPOSITORY_LOCK_PATH. Defined here, free of torch; ltx_runtime.weights reads the same path. The
    server takes it from its settings (`Settings.weights_lock`)."""
    return Path(os.environ.get("LTX_WEIGHTS_LOCK", REPOSITORY_LOCK_PATH))

USER_LORA_FOLDER = "loras"
LORA_FOLDER = "distilled_lora"
"""Where a model folder keeps its distilled LoRA (the guided recipes' stage 2): one .safetensors file (diffusers' or
Lightricks' key format)."""
MAX_LORAS = 4
"""LoRAs in one request (chosen: neither the SDK type, `lora: list[dict]`, nor the model pages give a bound)."""
MIN_WEIGHT, MAX_WEIGHT = -4.0, 4.0
"""The weight range (chosen: Runware's LoRA weights elsewhere are -4 to 4; the LTX pages give none)."""


class LoraListError(ValueError):
    """The operator's LoRA list cannot be read."""


@dataclass(frozen=True)
class LoraEntry:
    id: str
    file: str
    """File name inside the weights root's loras/ folder."""
    architecture: str


def parse_loras(data: object, where: str) -> dict[str, LoraEntry]:
    if not isinstance(data, dict):
        raise LoraListError(f"{where}: the LoRA list must be a JSON object of id -> {{file, architecture}}")
    entries = {}
    for lora_id, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or entry.get("architecture") not in (
            "ltx-2", "ltx-2.3"
        ):
            raise LoraListError(f"{where}: LoRA {lora_id!r} needs a file name and an architecture (ltx-2 or ltx-2.3)")
        path = PurePosixPath(entry["file"])
        if path.is_absolute() or ".." in path.parts or not entry["file"].endswith(".safetensors"):
            raise LoraListError(f"{where}: LoRA {lora_id!r}: {entry['file']!r} is not a .safetensors file in loras/")
        entries[lora_id] = LoraEntry(lora_id, entry["file"], entry["architecture"])
    return entries


def read_loras(lock_path: Path | None, listed: str = "") -> dict[str, LoraEntry]:
    """The LoRAs of weights.lock (`lock_path`, when it exists) and of the settings' JSON `listed` (which wins)."""
    entries: dict[str, LoraEntry] = {}
    if lock_path is not None and Path(lock_path).is_file():
        try:
            lock = json.loads(Path(lock_path).read_text())
        except ValueError as error:
            raise LoraListError(f"{lock_path}: {error}") from None
        entries.update(parse_loras(lock.get("loras", {}), str(lock_path)))
    if listed.strip():
        try:
            entries.update(parse_loras(json.loads(listed), "LTX_LORAS"))
        except ValueError as error:
            raise LoraListError(f"LTX_LORAS: {error}") from None
    return entries


def adapter_name(lora_id: str) -> str:
    """The adapter name a LoRA is loaded under (apart from the distilled LoRA's, and free of dots, which peft
    reads as module paths)."""
    return "user_" + "".join(c if c.isalnum() else "_" for c in lora_id) + f"_{zlib.crc32(lora_id.encode()):08x}"
