"""Server settings: environment variables `LTX_*`, or a TOML file named by `LTX_SETTINGS_FILE` (the environment wins)."""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import fields
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ltx_runtime.admission import HOME_TINY_FOLDER, SAFETY_CHECKER
from ltx_runtime.loras import REPOSITORY_LOCK_PATH
from ltx_runtime.media import X264_PRESET_DEFAULT

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "ltx-runtime"
DEFAULT_WEIGHTS_DIR = Path.home() / ".cache" / "ltx-runtime" / "weights"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LTX_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    """Base of the videoURLs handed to clients; default http://HOST:PORT."""
    data_dir: Path = DEFAULT_DATA_DIR
    """SQLite task store, media files, uploaded images, the generated API key."""
    database_url: str | None = None
    """The task store: `postgresql://USER:PASSWORD@HOST:PORT/DB` for several hosts sharing one queue; default the SQLite
    file in the data folder (`store_url`)."""
    node_id: str | None = Field(None, pattern=r"^[^/]+$")
    """This server's name among the hosts sharing a store: it prefixes its worker ids, and at start-up it requeues only
    the tasks its own previous workers held. Default HOSTNAME-HASH, HASH from the data folder's path (stable across
    restarts); set it when hostnames change at each start (containers) or processes share a host and data folder."""
    weights_dir: Path = DEFAULT_WEIGHTS_DIR
    weights_lock: Path = REPOSITORY_LOCK_PATH
    """weights.lock: the files each model's folder holds, and LoRAs requests may name (`loras` adds to them); default
    the repository's."""
    tiny_dir: Path = HOME_TINY_FOLDER
    """Root of the tiny random weights demo mode serves, one folder per architecture, built on first use (where
    `ltx-runtime generate --weights tiny` builds them too)."""
    demo: bool = False
    """Serve tiny random weights (`serve --demo`). Never switched on by itself: without it and without a CUDA GPU,
    the workers fail to start and readiness says why."""

    api_keys: str = ""
    """Comma-separated API keys. None: `serve` creates one in the data folder (or, in demo mode, accepts any key)."""
    webhook_secret: str | None = None
    """Standard Webhooks secret (whsec_...) to sign webhook deliveries; unsigned when unset."""
    outbound_allow_hosts: str = ""
    """Comma-separated hosts, addresses or CIDR networks that image URLs, webhooks and uploads may reach even though
    they are not public (e.g. an internal S3 gateway). Everything non-global is refused otherwise."""

    media_url: str | None = Field(None, pattern=r"^(s3://[^/?#]+(/[^?#]*)?)?$")
    """Where results and first-frame images are kept: unset (or empty), the data folder (served at /media and /images);
    s3://bucket/prefix, an S3 bucket (videoURLs are presigned GET URLs valid for the task's ttl)."""
    s3_endpoint_url: str | None = None
    """The S3-compatible server of media_url (MinIO, Ceph...); unset, AWS S3. Credentials: boto3's usual sources."""
    s3_public_endpoint_url: str | None = None
    """The address clients download presigned videoURLs from, when it is not s3_endpoint_url (e.g. the servers reach
    MinIO as http://minio:9000, clients as https://media.example.com); default s3_endpoint_url."""
    loras: str = ""
    """The LoRAs requests may name, as JSON `{"<id>": {"file": "<name in WEIGHTS_DIR/loras/>", "architecture":
    "ltx-2" | "ltx-2.3"}}`, added to (and overriding) weights.lock's `loras` (ltx_runtime/loras.py)."""
    sync_wait_seconds: float = Field(300.0, ge=0)
    """How long a videoInference reply with `deliveryMethod: "sync"` waits for its results; past it, the reply is the
    async acknowledgement with a message, and the client polls getResponse as for async."""
    media_ttl_seconds: int = Field(86400, ge=60)
    """How long results stay downloadable when a task gives no ttl."""
    image_ttl_seconds: int = Field(7 * 86400, ge=60)
    """How long uploaded (imageUpload) and first-frame images are kept after they were stored; the first frame of a
    task still to run is kept until it has run."""
    task_ttl_seconds: int = Field(30 * 86400, ge=60)
    """How long a finished task's row (getResponse, getTaskDetails, listTasks) is kept after it finished; then it is
    deleted with whatever it still has (result files, its first-frame image). /metrics' counters keep counting it."""
    price_per_gpu_hour: float = 2.5
    """USD per GPU-hour used for `cost` (an H100/H200 rental price, performance-anchors.md)."""
    cost_mode: Literal["measured", "hosted"] = "measured"
    """measured: GPU seconds x price_per_gpu_hour; hosted: the hosted API's list price for the clip."""

    role: Literal["all", "api", "worker"] = "all"
    """all: one box (API, loops and GPU workers in one server); api: accept, validate, serve reads, media and
    deliveries, no GPU workers; worker: the GPU worker pool only, with a health and metrics listener on the port.
    Every node of a fleet shares one task store and one media location."""
    workers: int | None = None
    """Worker processes; default one per CUDA GPU, or one on the CPU."""
    sqlite_busy_timeout: float = Field(30.0, gt=0)
    """Seconds a SQLite statement waits for another process's write lock; past it the call fails, and the API answers
    503 serviceUnavailable while the loops and workers back off and retry."""
    lease_seconds: float = 30.0
    max_attempts: int = 3
    watchdog_seconds: float = Field(600.0, gt=0)
    """Hang watchdog: a worker whose running task reports no progress (a denoising step, a decoded chunk, the
    encoder's end) for this long is killed and its task requeued (an attempt). Loading a model inside a task counts;
    the worker's first load at start does not. Generous by default: a real first step can take minutes."""
    shutdown_grace_seconds: float = Field(300.0, ge=0)
    """On SIGTERM: how long running generations may finish before they are stopped and requeued."""
    max_body_bytes: int = 20 * 1024 * 1024
    max_image_bytes: int = 15 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_pending_per_key: int = 20
    rate_limit_per_second: float = Field(50.0, ge=0)
    """Tasks (any taskType, over REST and WebSocket) and RunComfy requests one API key may send per second, on
    average; 0 turns the limit off. Over it: Runware rateLimitExceeded / RunComfy 429001, HTTP 429."""
    rate_limit_burst: int = Field(200, ge=1)
    """How many tasks a key may send at once above that rate (the token bucket's size)."""
    key_check_failures_per_second: float = Field(1.0, ge=0)
    """Failed API key checks (a wrong key in a header or an authentication task) one client address may make per
    second after its burst; over it, its keys are not checked at all for a while (HTTP 429 / RunComfy 429001). 0
    turns the limit off."""
    key_check_failures_burst: int = Field(20, ge=1)
    body_timeout_seconds: float = Field(60.0, gt=0)
    """A request body must arrive within this time once its headers are in (slow-body / slowloris defence)."""
    ws_auth_timeout_seconds: float = Field(10.0, gt=0)
    """A Runware WebSocket that has not authenticated within this time is sent an error and closed."""
    ws_idle_seconds: float = Field(300.0, gt=0)
    """An authenticated WebSocket that sends nothing for this long is closed (Runware: 120 s; clients ping sooner)."""
    ws_messages_per_second: float = Field(20.0, gt=0)
    ws_messages_burst: int = Field(100, ge=1)
    """Frames one WebSocket may send per second on average, with this burst; a flood is answered with an error and
    the connection is closed."""
    session_replay_seconds: int = Field(600, ge=0)
    """How long a finished result is kept for a Runware WebSocket session to resume (connectionSessionUUID) and
    receive it; Runware documents 120 s."""
    x264_preset: str = X264_PRESET_DEFAULT
    """libx264 preset for MP4 / MOV (ltx_runtime/media.py; docs/performance.md measures the choice)."""
    memory_profile: Literal["auto", "resident", "fp8", "low"] = "auto"
    """Where workers keep the weights: resident (bf16, 80 GB cards), fp8 (~48 GB), low (24 GB, streamed); auto
    picks by the GPU's memory, per model."""
    video_decoder: Literal["auto", "diffusion", "conv"] = "auto"
    """LTX-2.5's video decoder (ltx_runtime/diffusion_decode.py): the diffusion decoder, the official pipelines'
    default (it needs vae/ltx-2.5-video-vae-bf16.safetensors), the conv VAE, or auto: diffusion on a GPU, conv on the
    CPU (where the diffusion decoder takes minutes a second of video). Other models always use the conv VAE."""
    attention: Literal["auto", "native", "cudnn", "flash3"] = "auto"
    """Speed levers (ltx_runtime/speed.py); auto: cuDNN attention on CUDA, PyTorch's native one elsewhere."""
    compile: Literal["auto", "on", "off"] = "auto"
    """Regional torch.compile of the transformer blocks (CUDA)."""
    fp8_matmul: Literal["on", "off"] = "off"
    """torchao float8 matmuls in the transformer, only when set to on (quality not yet measured; CUDA compute
    capability 8.9+, resident profile, no LoRA)."""
    vae_tile_frames: int | None = Field(None, ge=16, multiple_of=8)
    """Temporal VAE tile length in frames; default the official 80 (overlap 24)."""
    prompt_cache: int = Field(16, ge=0)
    """Prompt embeddings kept for repeated prompts."""
    unmasked_cross_attention: Literal["auto", "on", "off"] = "auto"
    """Drop an all-ones prompt mask so that the mask-free attention kernel runs (numerically the same)."""
    fp8_attention: Literal["on", "off"] = "off"
    """SageAttention on the self-attention (CUDA, compute capability 8.9+, the sageattention package); opt-in."""
    cuda_graphs: Literal["on", "off"] = "off"
    """CUDA graphs (torch.compile reduce-overhead) over the compiled blocks; opt-in, needs compile."""
    vae_compile: Literal["on", "off"] = "off"
    """torch.compile of the video VAE's decoder (CUDA); opt-in."""
    vae_tiles: Literal["auto", "on", "off"] = "auto"
    """Larger VAE tiles (whole frames, longer temporal tiles) where a clip's memory plan has room (CUDA)."""
    gpu_colour: Literal["auto", "on", "off"] = "auto"
    """RGB -> yuv420p on the GPU, so ffmpeg encodes without converting (CUDA; the CPU keeps ffmpeg's conversion)."""
    preview_every: int = Field(2, ge=1)
    """Stage-1 steps between two live previews (each reads a small latent frame back from the GPU)."""
    memory_budget_gib: float | None = Field(None, gt=0)
    """GPU memory a request may plan to use; default 92% of the GPU's (no limit on the CPU). Larger requests are
    refused at submission, naming the limit."""
    require_safety: Literal["none", "fast", "full"] = "none"
    """Content checks for every task, whatever it asks: its output at least in this mode, and its frame images; added
    when a task is accepted (a task queued before it was set runs with the checks it was accepted with)."""
    safety_weights: Path | None = None
    """The content classifier's folder (`ltx-runtime weights pull safety-checker`); default WEIGHTS_DIR/safety-checker,
    or a tiny random one in demo mode. Without it, tasks that need a check are refused at submission."""
    safety_adjustment: float = 0.0
    """Added to every concept score of the classifier (diffusers' `adjustment`): 0.0 is the stock checker, higher
    flags more, lower flags less."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    """text: one line per event with key=value fields; json: one JSON object per line (for log shippers)."""
    access_log: bool = False
    """One line per HTTP request (every poll too); task events are logged either way."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        settings_file = os.environ.get("LTX_SETTINGS_FILE")
        if settings_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=settings_file))
        return tuple(sources)

    @property
    def speed_options(self):
        from ltx_runtime.speed import SpeedOptions

        # each lever's setting has the lever's name (LTX_<NAME>)
        return SpeedOptions(**{option.name: getattr(self, option.name) for option in fields(SpeedOptions)})

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def api_key_list(self) -> list[str]:
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    @property
    def allow_hosts(self) -> tuple[str, ...]:
        return tuple(host.strip() for host in self.outbound_allow_hosts.split(",") if host.strip())

    @property
    def scratch_dir(self) -> Path:
        """Where workers encode before the file is put in the media store; emptied when the worker pool starts."""
        return self.data_dir / "scratch"

    @property
    def tiny_safety_checker(self) -> bool:
        """Whether the content classifier is the tiny random stand-in (demo mode, no folder set), built on demand."""
        return self.demo and self.safety_weights is None

    @property
    def safety_folder(self) -> Path:
        if self.safety_weights is not None:
            return self.safety_weights
        return (self.tiny_dir if self.demo else self.weights_dir) / SAFETY_CHECKER

    @property
    def database(self) -> Path:
        return self.data_dir / "tasks.sqlite3"

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.database}"

    @property
    def node(self) -> str:
        if self.node_id:
            return self.node_id
        folder = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:8]
        return f"{socket.gethostname()}-{folder}"
