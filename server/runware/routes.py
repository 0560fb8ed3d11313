"""The Runware transports: REST `POST /v1` and the WebSocket `/v1`. They authenticate (a Bearer header on REST),
parse JSON, call `RunwareService.handle` and write `{"data": [...]}` / `{"errors": [...]}` back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from ..auth import ApiKeys
from ..bodies import CLOSE_CONNECTION, BodyLimits, BodyTimeout, BodyTooLarge, InvalidJSON, parse_json, read_body
from ..limits import TokenBucket
from .protocol import ContractError, Reply
from .service import INVALID_KEY_MESSAGE, MAX_TASKS_PER_REQUEST, RunwareService, Session

POLICY_VIOLATION = 1008  # the WebSocket close code for a client that broke a limit


@dataclass(frozen=True)
class SocketLimits:
    auth_seconds: float
    idle_seconds: float
    messages_per_second: float
    messages_burst: int


def runware_router(service: RunwareService, keys: ApiKeys, body_limits: BodyLimits, limits: SocketLimits) -> APIRouter:
    router = APIRouter()

    @router.post("/v1")
    async def rest(request: Request) -> JSONResponse:
        session = Session()
        try:
            tasks = parse_json(await read_body(request, body_limits))
        except BodyTooLarge as error:
            error = ContractError("invalidRequestBody", str(error), parameter="body", status=413)
            return _reply(Reply(errors=[error]), CLOSE_CONNECTION)
        except BodyTimeout as error:
            error = ContractError("requestBodyTimeout", str(error), parameter="body", status=408)
            return _reply(Reply(errors=[error]), CLOSE_CONNECTION)
        except InvalidJSON as error:
            return _reply(Reply(errors=[ContractError("invalidRequestBody", str(error), parameter="body")]))
        authorization = request.headers.get("authorization", "")
        if authorization:
            scheme, _, key = authorization.partition(" ")
            session.key_id = keys.identify(key.strip()) if scheme.lower() == "bearer" else None
            if session.key_id is None:
                error = ContractError("invalidApiKey", INVALID_KEY_MESSAGE, parameter="apiKey", status=401,
                                      task_type="authentication")  # the header does what an authentication task does
                return _reply(Reply(errors=[error]))
        return _reply(await service.handle(tasks, session))

    @router.websocket("/v1")
    async def websocket(socket: WebSocket) -> None:
        await socket.accept()
        session = Session(websocket=True)
        frames = TokenBucket(limits.messages_per_second, limits.messages_burst)
        auth_deadline = time.monotonic() + limits.auth_seconds
        try:
            while True:
                message = await _next_message(socket, session, limits, auth_deadline)
                if message is None:
                    return
                if not frames.take():
                    rate = f"{limits.messages_per_second:g} per second (burst {limits.messages_burst})"
                    await _close(socket, ContractError("rateLimitExceeded", f"more than {rate} frames; closing"))
                    return
                if message.get("text") is None:
                    await _send_error(socket, "binary frames are not accepted: send JSON text")
                    continue
                try:
                    tasks = parse_json(message["text"], "the frame")
                except InvalidJSON as error:
                    await _send_error(socket, str(error))
                    continue
                tasks = [tasks] if isinstance(tasks, dict) else tasks
                if not isinstance(tasks, list) or not 1 <= len(tasks) <= MAX_TASKS_PER_REQUEST:
                    await socket.send_json((await service.handle(tasks, session)).body())
                    continue
                # One frame per task: the auth reply must come first and alone, and a pong in a frame of its own.
                for task in tasks:
                    reply = await service.handle([task], session)
                    await socket.send_json(reply.body())
                    if _resumes_a_session(task, reply):
                        for frame in await service.replay(session):
                            await socket.send_json(frame.body())
        except WebSocketDisconnect:
            pass

    return router


async def _next_message(socket: WebSocket, session: Session, limits: SocketLimits, auth_deadline: float) -> dict | None:
    """The next frame; None once the client has gone, or after closing a socket that took too long: no successful
    authentication by `auth_deadline` (whatever else it sent), then nothing for `limits.idle_seconds`."""
    authenticated = session.key_id is not None
    try:
        async with asyncio.timeout(limits.idle_seconds if authenticated else auth_deadline - time.monotonic()):
            message = await socket.receive()
    except TimeoutError:
        if authenticated:
            idle = f"nothing received for {limits.idle_seconds:g} s; closing"
            await _close(socket, ContractError("connectionIdle", idle), 1000)
        else:
            await _close(socket, ContractError(
                "authenticationTimeout", f"no authentication within {limits.auth_seconds:g} s of connecting; closing",
                parameter="apiKey", task_type="authentication",
            ))  # fmt: skip
        return None
    return None if message["type"] == "websocket.disconnect" else message


async def _send_error(socket: WebSocket, message: str) -> None:
    """A frame that could not be read as tasks; the socket stays open."""
    await socket.send_json(Reply(errors=[ContractError("invalidRequestBody", message, parameter="body")]).body())


async def _close(socket: WebSocket, error: ContractError, code: int = POLICY_VIOLATION) -> None:
    await socket.send_json(Reply(errors=[error]).body())
    await socket.close(code, error.code)


def _resumes_a_session(task, reply: Reply) -> bool:
    return (
        isinstance(task, dict) and task.get("taskType") == "authentication"
        and bool(task.get("connectionSessionUUID")) and bool(reply.data)
    )  # fmt: skip


def _reply(reply: Reply, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(reply.body(), status_code=reply.http_status, headers=headers)
