"""`ltx-runtime serve`: settings, API keys, demo-mode decision and the uvicorn server."""

from __future__ import annotations

import logging
import os

import uvicorn

from .app import create_app
from .operations import DEMO_WARNING
from .auth import ApiKeys, load_or_create_key
from .settings import Settings

log = logging.getLogger("ltx_runtime.server")


def serve(host: str | None = None, port: int | None = None, public_url: str | None = None, demo: bool = False) -> None:
    logging.basicConfig(
        level=os.environ.get("LTX_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    overrides = {name: value for name, value in (("host", host), ("port", port), ("public_url", public_url)) if value}
    settings = Settings(**overrides, **({"demo": True} if demo else {}))
    import torch

    if not settings.demo and not torch.cuda.is_available():
        log.warning("no CUDA GPU found: switching to demo mode")
        settings = settings.model_copy(update={"demo": True})
    if settings.demo:
        banner = "!" * len(DEMO_WARNING)
        log.warning("%s\n%s\n%s", banner, DEMO_WARNING, banner)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    uvicorn.run(
        create_app(settings, api_keys(settings)),
        host=settings.host,
        port=settings.port,
        ws_max_size=settings.max_body_bytes,
        log_level="info",
    )


def api_keys(settings: Settings) -> ApiKeys:
    if settings.api_key_list:
        return ApiKeys(settings.api_key_list)
    if settings.demo:
        log.warning("demo mode with no API key configured: ANY API key is accepted (set LTX_API_KEYS to check keys)")
        return ApiKeys([], accept_any=True)
    key, created = load_or_create_key(settings.data_dir)
    where = settings.data_dir / "api_key"
    log.warning("%s API key (kept in %s): %s", "created an" if created else "using the", where, key)
    return ApiKeys([key])
