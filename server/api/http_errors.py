"""Contract-shaped answers for what no route handles: an unknown path, a wrong method, a malformed query parameter.

Each contract gives the body of such an answer (`RouteErrorBody`, in its protocol module) and the paths it owns; this
module knows no contract: `server/app.py` passes them in (RunComfy's paths get `{"error": {...}}`, the rest Runware's
`{"errors": [...]}`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

RouteErrorBody = Callable[[int, str, str], dict[str, Any]]
"""A contract's JSON body for an error no route raised: (HTTP status 404, 405 or 400, message, parameter)."""


def install_error_handlers(
    app: FastAPI, default: RouteErrorBody, by_prefix: dict[tuple[str, ...], RouteErrorBody]
) -> None:
    """`by_prefix`: the contracts that own paths starting with one of the prefixes; `default` answers the others."""

    def error(request: Request, status: int, message: str, parameter: str, headers=None) -> JSONResponse:
        body = next((shape for prefixes, shape in by_prefix.items() if request.url.path.startswith(prefixes)), default)
        return JSONResponse(body(status, message, parameter), status_code=status, headers=headers)

    async def http_error(request: Request, problem: HTTPException) -> JSONResponse:
        status = problem.status_code if problem.status_code in (404, 405) else 404
        message = "no such route" if status == 404 else f"{request.method} is not allowed here"
        return error(request, status, message, "path" if status == 404 else "method", headers=problem.headers)

    async def invalid_query(request: Request, problem: RequestValidationError) -> JSONResponse:
        detail = problem.errors()[0]
        parameter = str(detail["loc"][-1])
        return error(request, 400, f"{parameter}: {detail['msg']}", parameter)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_query)
