"""The Runware transports: REST `POST /v1` and the WebSocket `/v1`. They authenticate (a Bearer header on REST),
parse JSON, call `RunwareService.handle` and write `{"data": [...]}` / `{"errors": [...]}` back."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from ..auth import ApiKeys
from ..bodies import BodyTooLarge, read_body
from .protocol import ContractError, Reply
from .service import INVALID_KEY_MESSAGE, RunwareService, Session


def runware_router(service: RunwareService, keys: ApiKeys, max_body_bytes: int) -> APIRouter:
    router = APIRouter()

    @router.post("/v1")
    async def rest(request: Request) -> JSONResponse:
        session = Session()
        try:
            tasks = json.loads(await read_body(request, max_body_bytes))
        except BodyTooLarge as error:
            return _reply(Reply(errors=[ContractError("invalidRequestBody", str(error), status=413)]))
        except ValueError:
            return _reply(Reply(errors=[ContractError("invalidRequestBody", "the body is not valid JSON", parameter="body")]))
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
        try:
            while True:
                text = await socket.receive_text()
                try:
                    tasks = json.loads(text)
                except ValueError:
                    error = ContractError("invalidRequestBody", "the frame is not valid JSON", parameter="body")
                    await socket.send_json(Reply(errors=[error]).body())
                    continue
                tasks = [tasks] if isinstance(tasks, dict) else tasks
                if not isinstance(tasks, list) or not tasks:
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


def _resumes_a_session(task, reply: Reply) -> bool:
    return (
        isinstance(task, dict) and task.get("taskType") == "authentication"
        and bool(task.get("connectionSessionUUID")) and bool(reply.data)
    )  # fmt: skip


def _reply(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body(), status_code=reply.http_status)
