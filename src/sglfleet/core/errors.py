"""One exception tree for everything a client can be told, mapped to HTTP in one handler.

    GatewayError                      500 internal_error
    ├── BadRequest                    400 invalid_request_error
    │   ├── InvalidJSON               400
    │   ├── BodyTooLarge              413
    │   └── RequestTimeout            408 the request body did not arrive in time (closes)
    ├── Unauthorized                  401 authentication_error
    ├── Forbidden                     403 permission_error
    ├── ModelNotFound                 404 model_not_found
    ├── RouteNotFound                 404 not_found
    ├── ClientGone                    499 client left before the response started
    │   └── UploadAborted             499 client left while sending its body (logged as a rejection)
    ├── Overloaded                    429 rate_limit_exceeded (Retry-After)
    ├── Unavailable                   503 service_unavailable (Retry-After)
    │   ├── NoWorkerAvailable         503 no healthy worker for the model
    │   └── ModelFailed               503 crash circuit breaker open (reason + log summary)
    └── UpstreamError                 502 upstream_error
        ├── UpstreamConnectError      502
        ├── UpstreamTimeout           504
        ├── UpstreamStatus            the engine's 4xx as is, 5xx as 502
        └── UpstreamProtocolError     502

`retryable` marks failures that may be retried on another worker before the first byte.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    type = "internal_error"
    code: str | None = None
    retryable = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class BodyTooLarge(BadRequest):
    status = 413
    code = "request_too_large"


class RequestTimeout(BadRequest):
    """The body was still incomplete when `gateway.limits.body_timeout_s` ran out; the
    connection is closed after the answer (the rest of the body is never read)."""

    status = 408
    code = "request_timeout"

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(message, headers={"connection": "close"}, **kw)


class Unauthorized(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RouteNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ClientGone(GatewayError):
    """The client closed the connection before the response started (logged as 499)."""

    status = 499
    type = "client_closed_request"
    code = "client_closed_request"


class UploadAborted(ClientGone):
    """The client closed the connection while sending the request body. Unlike the
    ClientGone that dispatch raises (and records itself), this one is logged and counted
    like any other rejection: one access-log line, no traceback."""


class Overloaded(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after_s: int = 1, **kw: Any) -> None:
        super().__init__(message, headers={"retry-after": str(retry_after_s)}, **kw)


class Unavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"

    def __init__(self, message: str, retry_after_s: int = 5, **kw: Any) -> None:
        super().__init__(message, headers={"retry-after": str(retry_after_s)}, **kw)


class NoWorkerAvailable(Unavailable):
    code = "no_worker_available"


class ModelFailed(Unavailable):
    code = "model_failed"


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"
    retryable = True


class UpstreamConnectError(UpstreamError):
    code = "upstream_connect_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"


RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class UpstreamStatus(UpstreamError):
    """The engine answered with an error status; 4xx pass through, 5xx become 502."""

    def __init__(self, upstream_status: int, message: str, upstream_body: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=f"upstream_{upstream_status}")
        self.upstream_status = upstream_status
        self.upstream_body = upstream_body
        self.retryable = upstream_status in RETRYABLE_STATUSES
        if 400 <= upstream_status < 500 and upstream_status not in (408, 429):
            self.status = upstream_status
            self.type = "invalid_request_error"
        elif upstream_status == 429:
            self.status = 429
            self.type = "rate_limit_error"


def error_body(status: int, message: str, type_: str = "invalid_request_error",
               code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
