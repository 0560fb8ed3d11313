"""Contract-shaped answers for what no route handles: an unknown path, a wrong method, a malformed query parameter.

Paths under RunComfy's routes get RunComfy's `{"error": {...}}`; everything else gets Runware's `{"errors": [...]}`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .runcomfy.protocol import error_object

RUNCOMFY_PREFIXES = ("/v1/models/", "/v1/requests")
RUNWARE_CODES = {404: "notFound", 405: "methodNotAllowed"}
RUNCOMFY_CODES = {404: (404001, "ResourceNotFound"), 405: (405001, "MethodNotAllowed")}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_query)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    status = error.status_code if error.status_code in RUNWARE_CODES else 404
    message = "no such route" if status == 404 else f"{request.method} is not allowed here"
    return _error(request, status, message, "path" if status == 404 else "method", headers=error.headers)


async def _invalid_query(request: Request, error: RequestValidationError) -> JSONResponse:
    problem = error.errors()[0]
    parameter = str(problem["loc"][-1])
    return _error(request, 400, f"{parameter}: {problem['msg']}", parameter)


def _error(request: Request, status: int, message: str, parameter: str, headers=None) -> JSONResponse:
    if request.url.path.startswith(RUNCOMFY_PREFIXES):
        code, name = RUNCOMFY_CODES.get(status, (400003, "InvalidParameter"))
        body = {"error": error_object(code, name, message, parameter)}
    else:
        body = {"errors": [{"code": RUNWARE_CODES.get(status, "invalidParameter"), "message": message,
                            "parameter": parameter}]}  # fmt: skip
    return JSONResponse(body, status_code=status, headers=headers)
