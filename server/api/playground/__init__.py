"""The playground: a page served at `/` and `/playground` that generates, watches and keeps clips through the public
Runware WebSocket (`/v1`), plus `GET /v1/models`, the catalog as the page (or any client) needs it."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from ltx_runtime.catalog import MODELS, ModelSpec, SizeRange

from ...ops.routes import DEMO_WARNING

STATIC = Path(__file__).parent / "static"
NO_FRAMING = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
"""The page may not be shown inside another site's frame, where its buttons could be clicked through a decoy
(clickjacking): the old header for old browsers, the CSP directive for the others."""


def playground_router(demo: bool) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    @router.get("/playground", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=NO_FRAMING)

    @router.get("/v1/models")
    async def models() -> dict:
        body = {"demo": demo, "models": [describe(spec) for spec in MODELS.values() if demo or not spec.demo_only]}
        if demo:
            body["warning"] = DEMO_WARNING
        return body

    return router


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


def describe(spec: ModelSpec) -> dict:
    """A model's valid combinations and prices, from the catalog."""
    if isinstance(spec.sizes, SizeRange):
        sizes = {"sizeRange": {"min": spec.sizes.minimum, "max": spec.sizes.maximum, "step": spec.sizes.step}}
    else:
        sizes = {"sizes": [list(size) for size in spec.sizes]}
    return {
        "id": spec.id,
        "name": spec.name,
        **sizes,
        "defaultSize": list(spec.default_size),
        "durations": list(spec.all_durations()),
        "defaultDuration": spec.default_duration,
        "fps": list(spec.fps_values),
        "defaultFps": spec.default_fps,
        "audioFlag": ".".join(spec.audio_flag),
        "audioDefault": spec.audio_default,
        "pricePerSecond": [{"width": w, "height": h, "usd": usd} for (w, h), usd in spec.price_per_second.items()],
        "demoOnly": spec.demo_only,
    }
