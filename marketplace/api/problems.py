"""Errors as RFC 9457 problem details, carrying the domain's machine-readable code.

Every refusal the API returns is ``application/problem+json`` with ``type`` (a URN per
code, stable for clients to switch on), ``title``, ``status``, ``detail`` (the domain
message: exactly what is wrong), ``instance`` (the request path) and ``code`` plus the
ids the error carries. Token failures add the RFC 6750 ``WWW-Authenticate`` header so
OAuth client libraries recognise them; quota refusals add ``Retry-After``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from domain.errors import DomainError, InvalidInput, NotFound, PermissionDenied

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:shuyun:problem:"


#: Ids a domain error may carry whose names are standard members of a problem document.
_RENAMED = {"status": "state", "type": "kind", "title": "title_text", "detail": "detail_text", "instance": "at"}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str = "",
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """One problem document; ``extra`` members are added beside the standard ones (RFC 9457 §3.2)."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    for key, value in (extra or {}).items():
        body.setdefault(_RENAMED.get(key, key), value)
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def from_error(error: DomainError, *, instance: str = "", now: datetime | None = None) -> Response:
    """The problem document of a domain refusal, with the status the error class declares."""
    headers: dict[str, str] = {}
    if error.status == 401:
        # RFC 6750 §3 / RFC 9449 §7.1: the scheme and error code OAuth clients look for.
        description = error.message.replace("\\", "\\\\").replace('"', "'")
        if error.code == "invalid_dpop_proof":
            challenge = f'DPoP algs="ES256 Ed25519", error="invalid_dpop_proof", error_description="{description}"'
        else:
            challenge = f'Bearer error="invalid_token", error_description="{description}"'
        headers["WWW-Authenticate"] = challenge
    if error.status == 429:
        retry = _retry_after(error.ids.get("reset_on"), now)
        if retry is not None:
            headers["Retry-After"] = str(retry)
    extra = {k: v for k, v in error.ids.items() if k not in ("code", "message")}
    return problem(error.status, error.code, error.message, instance=instance, headers=headers, extra=extra)


def not_found(path: str) -> Response:
    return from_error(NotFound(f"no such resource: {path}"), instance=path)


def bad_request(field: str, problem_text: str, *, instance: str = "") -> Response:
    return from_error(InvalidInput(field, problem_text), instance=instance)


def forbidden(message: str, *, instance: str = "") -> Response:
    return from_error(PermissionDenied(message), instance=instance)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _retry_after(reset_on: str | None, now: datetime | None) -> int | None:
    """Seconds until the quota resets (midnight at the start of ``reset_on``, Baotou time)."""
    if not reset_on:
        return None
    try:
        day = date.fromisoformat(reset_on)
    except ValueError:
        return None
    from domain.licensing import BUSINESS_TZ

    reset = datetime(day.year, day.month, day.day, tzinfo=BUSINESS_TZ)
    current = now or datetime.now(UTC)
    return max(0, int((reset - current).total_seconds()))
