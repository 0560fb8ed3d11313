"""The Runware transports: REST `POST /v1` and the WebSocket `/v1`. They check the key before they parse a body or
frame (a Bearer header on REST, or an authentication task at its head, read from its first bytes), then parse the
JSON, call `RunwareService.handle` and write `{"data": [...]}` / `{"errors": [...]}` back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from uvicorn.protocols.utils import ClientDisconnected

from ..bodies import (
    CLOSE_CONNECTION, NOT_JSON_MESSAGE, BodyLimits, BodyTimeout, BodyTooLarge, InvalidJSON, first_task, parse_large_json,
    read_body, says_json,
)  # fmt: skip
from ..limits import TokenBucket
from .protocol import ContractError, Reply
from .service import MAX_TASKS_PER_REQUEST, RunwareService, Session, invalid_key_error, missing_key_error

POLICY_VIOLATION = 1008  # the WebSocket close code for a client that broke a limit


@dataclass(frozen=True)
class SocketLimits:
    auth_seconds: float
    idle_seconds: float
    messages_per_second: float
    messages_burst: int


def runware_router(service: RunwareService, body_limits: BodyLimits, limits: SocketLimits) -> APIRouter:
    router = APIRouter()

    @router.post("/v1")
    async def rest(request: Request) -> JSONResponse:
        """The key is checked before the body is parsed: the header's, or the first task's (an authentication task,
        read from the body's first bytes); only then is the whole body parsed, in a thread when it is large."""
        if not says_json(request):
            error = ContractError("unsupportedContentType", NOT_JSON_MESSAGE, parameter="Content-Type", status=415)
            return _reply(Reply(errors=[error]), CLOSE_CONNECTION)
        session = Session(client=request.client.host if request.client else None)
        try:
            body = await read_body(request, body_limits)
        except BodyTooLarge as error:
            error = ContractError("invalidRequestBody", str(error), parameter="body", status=413)
            return _reply(Reply(errors=[error]), CLOSE_CONNECTION)
        except BodyTimeout as error:
            error = ContractError("requestBodyTimeout", str(error), parameter="body", status=408)
            return _reply(Reply(errors=[error]), CLOSE_CONNECTION)
        first = first_task(body)
        authorization = request.headers.get("authorization", "")
        try:
            if authorization:
                scheme, _, key = authorization.partition(" ")
                session.key_id = service.identify(key.strip(), session, first) if scheme.lower() == "bearer" else None
                if session.key_id is None:
                    return _reply(Reply(errors=[invalid_key_error(first)]))
            elif _is_authentication(first):
                refused = await service.handle([first], session)
                if session.key_id is None:
                    return _reply(refused)
            else:
                return _reply(Reply(errors=[missing_key_error(first)]))
        except ContractError as error:  # too many failed key checks from this address
            return _reply(Reply(errors=[error]))
        try:
            tasks = await parse_large_json(body)
        except InvalidJSON as error:
            return _reply(Reply(errors=[ContractError("invalidRequestBody", str(error), parameter="body")]))
        return _reply(await service.handle(tasks, session))

    @router.websocket("/v1")
    async def websocket(socket: WebSocket) -> None:
        await socket.accept()
        session = Session(websocket=True, client=socket.client.host if socket.client else None)
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
                text = message.get("text")
                if text is None:
                    await _send_error(socket, "binary frames are not accepted: send JSON text")
                    continue
                authenticated_now = False
                if session.key_id is None:  # the key first, from the frame's first task, before the rest is parsed
                    first = first_task(text)
                    if not _is_authentication(first):
                        await socket.send_json(Reply(errors=[missing_key_error(first)]).body())
                        continue
                    await _answer(socket, service, session, first)
                    if session.key_id is None:
                        continue
                    authenticated_now = True
                try:
                    tasks = await parse_large_json(text, "the frame")
                except InvalidJSON as error:
                    await _send_error(socket, str(error))
                    continue
                tasks = [tasks] if isinstance(tasks, dict) else tasks
                if not isinstance(tasks, list) or not 1 <= len(tasks) <= MAX_TASKS_PER_REQUEST:
                    await socket.send_json((await service.handle(tasks, session)).body())
                    continue
                # One frame per task: the auth reply must come first and alone, and a pong in a frame of its own.
                for task in tasks[1:] if authenticated_now else tasks:
                    await _answer(socket, service, session, task)
        except (WebSocketDisconnect, ClientDisconnected):  # ClientDisconnected: gone without a close frame
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


async def _answer(socket: WebSocket, service: RunwareService, session: Session, task) -> None:
    """One task's reply in a frame of its own, then what a resumed session missed."""
    reply = await service.handle([task], session)
    await socket.send_json(reply.body())
    if _resumes_a_session(task, reply):
        for frame in await service.replay(session):
            await socket.send_json(frame.body())


async def _send_error(socket: WebSocket, message: str) -> None:
    """A frame that could not be read as tasks; the socket stays open."""
    await socket.send_json(Reply(errors=[ContractError("invalidRequestBody", message, parameter="body")]).body())


async def _close(socket: WebSocket, error: ContractError, code: int = POLICY_VIOLATION) -> None:
    await socket.send_json(Reply(errors=[error]).body())
    await socket.close(code, error.code)


def _is_authentication(task) -> bool:
    return isinstance(task, dict) and task.get("taskType") == "authentication"


def _resumes_a_session(task, reply: Reply) -> bool:
    return _is_authentication(task) and bool(task.get("connectionSessionUUID")) and bool(reply.data)


def _reply(reply: Reply, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(reply.body(), status_code=reply.http_status, headers=headers)
