"""How the API answers failures: a 4xx that says what to fix, or a 503 with a retry hint.

One handler per family of exception:

- `AuthError` → 401 with the reason (replayed message, wrong domain, wrong chain, ...);
- `UploadRejected` → 413/422 listing the offending CSV lines;
- any `BackendError` → its `status_code` (404 unknown order, 403 another buyer's release, ...);
- a contract revert → 409 naming the custom error;
- the RPC node or the database unreachable → 503 with ``Retry-After``;
- a malformed request → 422, without echoing the request's content back (it could hold codes).

No answer ever carries a plaintext code: messages are built from ids, line numbers and reasons.

Every error body also carries ``code``, a stable machine code for clients that show the error in
their own words (the web translates by it): the snake_case name of the backend's exception
(``unknown_listing``, ``upload_in_progress``, ...), ``contract.<CustomError>`` for a revert
(with ``args``), ``unauthorized``, ``invalid_request``, ``database_unavailable``,
``chain_unavailable``, or ``http_<status>``. A code never changes meaning; new ones are added.
"""

from __future__ import annotations

import logging
import re
from email.message import Message
from typing import TYPE_CHECKING, Any, ClassVar

import requests
import sqlalchemy.exc as sa_exc
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

from backend.auth import AuthError
from backend.errors import BackendError, ChainUnavailable, UploadRejected
from contracts.errors import ChainError, ContractRevertError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fastapi import FastAPI, Request
    from starlette.responses import Response

log = logging.getLogger("kameng.api")

#: Seconds a client should wait before retrying when a dependency is down.
RETRY_AFTER_S = 5


class ApiError(BackendError):
    """An API-level refusal with a status and optional headers.

    Attributes:
        status: The HTTP status to answer.
        headers: Extra response headers, such as ``Retry-After``.
    """

    status_code: ClassVar[int] = 400

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status or self.status_code
        self.headers = headers or {}
        #: A stable machine code for this refusal (default: from the class name).
        self.code = code


class NotFound(ApiError):
    """The resource does not exist (or is not in the mirror yet)."""

    status_code: ClassVar[int] = 404


class Forbidden(ApiError):
    """The authenticated wallet may not see or do this."""

    status_code: ClassVar[int] = 403


class NotReady(ApiError):
    """The resource will exist shortly (a release being sealed); retry after a second."""

    status_code: ClassVar[int] = 409

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class DatabaseUnavailable(BackendError):
    """The database did not answer."""

    status_code: ClassVar[int] = 503


def _json(
    status: int, detail: str, headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    extra.setdefault("code", f"http_{status}")
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def error_code(exc: BaseException) -> str:
    """The stable machine code of a backend exception: its class name in snake_case
    (``UnknownListing`` → ``unknown_listing``); an `ApiError` may name its own."""
    own = getattr(exc, "code", None)
    if isinstance(own, str) and own:
        return own
    return _CAMEL_BOUNDARY.sub("_", type(exc).__name__).lower().rstrip("_")


def _unavailable(
    what: str, exc: BaseException, retry_after: int = RETRY_AFTER_S
) -> tuple[int, dict[str, object], dict[str, str]]:
    # Log the exception type only: driver messages can quote SQL parameters.
    log.warning("%s is unavailable: %s", what, type(exc).__name__)
    return (
        503,
        {
            "detail": f"{what} is unavailable right now ({type(exc).__name__}); nothing was "
            f"changed; retry in {retry_after} s",
            "code": "database_unavailable" if what == "the database" else "chain_unavailable",
        },
        {"Retry-After": str(retry_after)},
    )


_DB_DOWN = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    DatabaseUnavailable,
)
_RPC_DOWN = (requests.exceptions.RequestException, TimeExhausted, Web3Exception, ChainError)


def describe(exc: BaseException) -> tuple[int, dict[str, object], dict[str, str]] | None:
    """The status, JSON body and headers the API answers `exc` with; None if not ours to map.

    Used by the exception handlers and by streaming routes that fail after the status was sent.
    """
    if isinstance(exc, AuthError):
        return (
            401,
            {"detail": exc.reason, "code": "unauthorized"},
            {"WWW-Authenticate": 'Bearer realm="kameng", SIWE'},
        )
    if isinstance(exc, UploadRejected):
        return (
            exc.status_code,
            {
                "detail": str(exc),
                "code": "upload_rejected",
                "errors": [{"line": line, "reason": reason} for line, reason in exc.problems],
                "total": exc.total,
            },
            {},
        )
    if isinstance(exc, ApiError):
        return exc.status, {"detail": str(exc), "code": error_code(exc)}, exc.headers
    if isinstance(exc, ChainUnavailable):
        return (
            503,
            {"detail": str(exc), "code": "chain_unavailable"},
            {"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, _DB_DOWN):
        return _unavailable("the database", exc)
    if isinstance(exc, BackendError):
        retry = getattr(exc, "retry_after", None)
        return (
            exc.status_code,
            {"detail": str(exc), "code": error_code(exc)},
            ({"Retry-After": str(retry)} if isinstance(retry, int) else {}),
        )
    if isinstance(exc, ContractRevertError):
        return (
            409,
            {
                "detail": f"the escrow contract refused: {exc.name}{exc.args_!r}",
                "code": f"contract.{exc.name}",
                "args": [str(a) for a in exc.args_],
            },
            {},
        )
    if isinstance(exc, ContractLogicError):
        return (
            409,
            {
                "detail": f"the escrow contract refused the call ({type(exc).__name__})",
                "code": "contract.refused",
            },
            {},
        )
    if isinstance(exc, _RPC_DOWN):
        return _unavailable("the RPC node", exc)
    return None


def parsed_as_json(content_type: str | None) -> bool:
    """Whether FastAPI reads a body with this ``Content-Type`` as JSON (as its router does)."""
    if not content_type:
        return True
    message = Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def unreadable_body(exc: BaseException | None) -> str | None:
    """What to fix in a JSON body the framework could not read, from the error it raised.

    FastAPI answers any failure to read a JSON body other than a syntax error with the bare
    400 ``There was an error parsing the body``; the cause says which it was.

    Args:
        exc: The exception behind the 400 (its ``__cause__``).

    Returns:
        The message, or None when `exc` is no body-reading failure we know.
    """
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"the request body is not valid {exc.encoding.upper()} (byte {exc.start}): send JSON "
            "encoded as UTF-8"
        )
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return (
            "the request body holds a number of more than 4300 digits, which is not read: send "
            "large numbers as decimal strings"
        )
    if isinstance(exc, (ValueError, RecursionError)):
        return (
            f"the request body cannot be read as JSON ({type(exc).__name__}): send a UTF-8 JSON "
            "document"
        )
    return None


def _problem(err: Mapping[str, Any]) -> str:
    """One validation error as a phrase: where, and what is wrong."""
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "json_invalid":
        at = loc[1] if len(loc) > 1 else "?"
        reason = (err.get("ctx") or {}).get("error", "invalid")
        return f"the body is not valid JSON (character {at}: {reason})"
    where = ".".join(str(p) for p in loc)
    return f"{where}: {err.get('msg', 'invalid')}"


def install(app: FastAPI) -> None:
    """Register the exception handlers on `app`."""

    async def handle(_: Request, exc: Exception) -> JSONResponse:
        described = describe(exc)
        if described is None:  # pragma: no cover - only registered for mapped types
            raise exc
        status, body, headers = described
        return JSONResponse(body, status_code=status, headers=headers or None)

    for kind in (AuthError, BackendError, ContractRevertError, *_DB_DOWN, *_RPC_DOWN):
        app.add_exception_handler(kind, handle)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = unreadable_body(exc.__cause__) if exc.status_code == 400 else None
        if detail is not None:
            return _json(400, detail, code="unreadable_body")
        if isinstance(exc.detail, str):
            return _json(exc.status_code, exc.detail, dict(exc.headers or {}) or None)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        kind = request.headers.get("content-type", "")
        if any(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors) and not (
            parsed_as_json(kind)
        ):
            shown = kind.split(";")[0].strip()[:60]
            return _json(
                422,
                "invalid request: the body must be JSON, sent with Content-Type: "
                f"application/json (got {shown!r}); fix the content type and retry",
                code="invalid_content_type",
            )
        problems = [_problem(err) for err in errors]
        return _json(
            422,
            "invalid request: " + "; ".join(problems) + "; fix these fields and retry",
            code="invalid_request",
        )
