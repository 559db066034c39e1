"""RFC 9457 problem details for every error, so clients get one shape and a reason."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from temporalio.service import RPCError

from duecourse.domain.money import CurrencyError
from duecourse.intake import format_validation_error
from duecourse.temporal.client import ActionRejected, LoanClosed, LoanNotFound

log = structlog.get_logger("duecourse.api")

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class ProblemError(Exception):
    """Raise to answer with a problem (status, title, detail)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def _response(request: Request, status: int, title: str, detail: str,
              errors: list[dict[str, Any]] | None = None,
              headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, instance=request.url.path,
                   errors=errors)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type=MEDIA_TYPE, headers=headers)


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    """Validation errors as plain JSON: location, message, type."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in errors]


DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    LoanNotFound: (404, "Loan not found"),
    LoanClosed: (409, "Loan closed"),
    ActionRejected: (422, "Action rejected"),
    CurrencyError: (422, "Invalid amount"),
}
"""Domain errors and the problem each becomes; the message is the precise reason."""


def _domain(code: int, title: str) -> Any:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return _response(request, code, title, str(exc))
    return handle


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean(list(exc.errors()))
        detail = "; ".join(f"{'.'.join(e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
                           for e in errors) or "invalid request"
        return _response(request, 422, "Invalid request", detail, errors)

    @app.exception_handler(ValidationError)
    async def _domain_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        return _response(request, 422, "Invalid request", format_validation_error(exc),
                         _clean(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _response(request, exc.status_code, str(exc.detail), str(exc.detail),
                         headers=getattr(exc, "headers", None))

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _response(request, exc.status, exc.title, exc.detail, headers=headers)

    for error, (code, title) in DOMAIN_ERRORS.items():
        app.add_exception_handler(error, _domain(code, title))

    @app.exception_handler(RPCError)
    async def _temporal(request: Request, exc: RPCError) -> JSONResponse:
        log.warning("temporal error", path=request.url.path, status=exc.status.name,
                    message=exc.message)
        return _response(request, 503, "Collection engine unavailable",
                         f"Temporal answered {exc.status.name}: {exc.message}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return _response(request, 500, "Internal error",
                         "an unexpected error occurred; it has been logged")


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the problem answers an operation can give."""
    titles = {400: "Bad request", 401: "Missing or invalid API key",
              403: "The key's role may not do this", 404: "Not found",
              409: "The loan's collection has ended", 422: "Invalid or refused",
              503: "The collection engine is unavailable"}
    return {code: {"model": Problem, "description": titles[code],
                   "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for code in (400, 401, 403, 422, 503, *codes)}
