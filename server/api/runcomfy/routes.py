"""RunComfy's HTTP routes: `POST /v1/models/{owner}/{family}/{variant}/{mode}`, and status, result and cancel under
`/v1/requests/{request_id}` (plus `GET /v1/requests`, this server's list of a key's latest requests). Every route
takes `Authorization: Bearer <key>` (the server's API keys)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..auth import ApiKeys, KeyChecksThrottled
from ..bodies import (
    CLOSE_CONNECTION, NOT_JSON_MESSAGE, BodyLimits, BodyTimeout, BodyTooLarge, InvalidJSON, parse_large_json, read_body,
    says_json,
)  # fmt: skip
from ...store.threads import in_thread
from ..limits import RateLimiter
from .protocol import RunComfyError, account_error, invalid_parameter
from .service import RunComfyService


def runcomfy_router(service: RunComfyService, keys: ApiKeys, body_limits: BodyLimits, limiter: RateLimiter) -> APIRouter:
    router = APIRouter()

    def key_of(request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise account_error("send your API key as Authorization: Bearer <key>")
        try:
            key_id = keys.identify(token.strip(), request.client.host if request.client else None)
        except KeyChecksThrottled as error:
            raise RunComfyError(429001, "TooManyRequests", str(error), 429, "Authorization") from None
        if key_id is None:
            raise account_error("invalid API key")
        refusal = limiter.refusal(key_id)
        if refusal:
            raise RunComfyError(429001, "TooManyRequests", refusal, 429, "Authorization")
        return key_id

    @router.post("/v1/models/{owner}/{family}/{variant}/{mode}")
    async def submit(owner: str, family: str, variant: str, mode: str, request: Request) -> JSONResponse:
        try:
            if not says_json(request):
                raise RunComfyError(415001, "UnsupportedMediaType", NOT_JSON_MESSAGE, 415, "Content-Type")
            key_id = key_of(request)
            try:
                body = await parse_large_json(await read_body(request, body_limits))
            except BodyTooLarge as error:
                raise RunComfyError(400003, "InvalidParameter", str(error), 413, "body") from None
            except BodyTimeout as error:
                raise RunComfyError(408001, "RequestTimeout", str(error), 408, "body") from None
            except InvalidJSON as error:
                raise invalid_parameter("body", str(error)) from None
            return JSONResponse(await in_thread(service.submit, key_id, f"{owner}/{family}/{variant}", mode, body))
        except RunComfyError as error:
            return _error(error)

    @router.get("/v1/requests")
    async def recent(request: Request, limit: int = 20) -> JSONResponse:
        return await _answer(lambda: service.recent(key_of(request), max(1, min(limit, 100))))

    @router.get("/v1/requests/{request_id}/status")
    async def status(request_id: str, request: Request) -> JSONResponse:
        return await _answer(lambda: service.status(key_of(request), request_id))

    @router.get("/v1/requests/{request_id}/result")
    async def result(request_id: str, request: Request) -> JSONResponse:
        return await _answer(lambda: service.result(key_of(request), request_id))

    @router.post("/v1/requests/{request_id}/cancel")
    async def cancel(request_id: str, request: Request) -> JSONResponse:
        return await _answer(lambda: service.cancel(key_of(request), request_id))

    return router


async def _answer(read) -> JSONResponse:
    """`read` runs in the thread pool: the store is synchronous and must not stall the event loop."""
    try:
        return JSONResponse(await in_thread(read))
    except RunComfyError as error:
        return _error(error)


def _error(error: RunComfyError) -> JSONResponse:
    headers = CLOSE_CONNECTION if error.status in (408, 413, 415) else None  # the body was not read to its end
    return JSONResponse(error.body(), status_code=error.status, headers=headers)
