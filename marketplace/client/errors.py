"""The SDK's exceptions: one class per thing an analyst can do something about.

The API answers every refusal with RFC 9457 problem JSON carrying a machine-readable
``code`` (and the token endpoint with RFC 6749 ``{"error", "error_description"}``).
``from_problem`` turns either into the most specific exception here, so a notebook can
``except QuotaExceeded as e: wait_until(e.reset_on)`` instead of parsing messages. Every
exception keeps the whole problem document in ``problem`` for anything not lifted out.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any


class ShuyunError(Exception):
    """Base of every SDK error; ``code`` is the API's problem code, ``detail`` its message."""

    def __init__(self, detail: str, *, code: str = "", status: int = 0, problem: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})

    def __str__(self) -> str:
        return f"{self.detail} [{self.code}]" if self.code else self.detail


class AuthenticationFailed(ShuyunError):
    """The workspace credentials were refused (wrong or revoked client, member removed, bad token).

    Ask the unit admin to re-issue the workspace's credentials (``shuyun workspace launch``).
    """


class NotEntitled(ShuyunError):
    """The unit has no usable subscription covering this product or field (art. 23)."""

    def __init__(self, detail: str, *, product: str | None = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.product = product


class PolicyViolation(ShuyunError):
    """The product's policy forbids the query; ``rule`` and ``column`` say which part."""

    def __init__(self, detail: str, *, rule: str = "", column: str = "", **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.rule = rule
        self.column = column

    def __str__(self) -> str:
        return f"{self.detail} [rule {self.rule}, column {self.column!r}]"


class InvalidQuery(ShuyunError):
    """The query is malformed; ``field`` is the path of the part at fault (``aggregates[0].fn``)."""

    def __init__(self, detail: str, *, field: str = "", **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.field = field


class QuotaExceeded(ShuyunError):
    """The month's query or row quota is used up; it resets on ``reset_on`` (Baotou calendar)."""

    def __init__(self, detail: str, *, quota: str = "", reset_on: date | None = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.quota = quota
        self.reset_on = reset_on


class PrivacyBudgetExhausted(ShuyunError):
    """The subscription's differential-privacy budget cannot pay for this query."""

    def __init__(
        self, detail: str, *, needed: float | None = None, remaining: float | None = None,
        reset_on: date | None = None, **kw: Any,
    ) -> None:
        super().__init__(detail, **kw)
        self.needed = needed
        self.remaining = remaining
        self.reset_on = reset_on


class SubscriptionInactive(ShuyunError):
    """The subscription cannot be used now; ``state`` is its status (pending, terminated, ...)."""

    def __init__(self, detail: str, *, subscription: str | None = None, state: str = "", **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.subscription = subscription
        self.state = state


class SubscriptionSuspended(SubscriptionInactive):
    """The operator suspended the subscription or the whole unit (art. 34)."""


class SubscriptionExpired(SubscriptionInactive):
    """The subscription's term is over; the unit must file a new demand application."""


class ProductUnavailable(ShuyunError):
    """The product is not delivered now (back in compliance review, or its data is missing)."""


class ServiceUnavailable(ShuyunError):
    """The platform could not answer (e.g. metering unavailable); retrying later is safe."""


class ResultUnreadable(ShuyunError):
    """A granted result did not arrive whole: the stream was cut (``result_truncated``) or is not
    valid Arrow (``result_corrupt``).

    The query WAS metered (``use_id`` names the use on the ledger), so running it again
    counts again; nothing partial is ever returned in place of the result.
    """

    def __init__(self, detail: str, *, use_id: str = "", **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.use_id = use_id


_AUTH = {"invalid_client", "invalid_token", "token_expired", "token_revoked", "client_revoked", "member_removed",
         "unauthorized_client", "permission_denied", "invalid_request"}
_NOT_ENTITLED = {"scope_not_allowed", "out_of_scope", "not_found"}


def _date(value: object) -> date | None:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _float(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def from_problem(status: int, body: dict[str, Any], *, product: str | None = None) -> ShuyunError:
    """The most specific exception for an API refusal (problem JSON or an OAuth error)."""
    if "error" in body and "code" not in body:  # RFC 6749 §5.2 from the token endpoint
        code = str(body.get("error", ""))
        detail = str(body.get("error_description") or code)
        kw: dict[str, Any] = {"code": code, "status": status, "problem": body}
        if code == "invalid_scope":
            found = re.search(r"is (\w+), not active", detail)
            if found and found.group(1) == "suspended":
                return SubscriptionSuspended(detail, state="suspended", **kw)
            if found and found.group(1) == "expired":
                return SubscriptionExpired(detail, state="expired", **kw)
            if found:
                return SubscriptionInactive(detail, state=found.group(1), **kw)
            return NotEntitled(detail, product=product, **kw)
        if code == "unauthorized_client" and "not qualified" in detail:
            return SubscriptionSuspended(detail, state="unit_suspended", **kw)
        return AuthenticationFailed(detail, **kw)
    code = str(body.get("code", ""))
    detail = str(body.get("detail") or body.get("title") or code or f"HTTP {status}")
    kw = {"code": code, "status": status, "problem": body}
    if code == "quota_exceeded":
        return QuotaExceeded(detail, quota=str(body.get("quota", "")), reset_on=_date(body.get("reset_on")), **kw)
    if code == "privacy_budget_exhausted":
        return PrivacyBudgetExhausted(
            detail, needed=_float(body.get("needed")), remaining=_float(body.get("remaining")),
            reset_on=_date(body.get("reset_on")), **kw,
        )
    if code == "policy_violation":
        return PolicyViolation(detail, rule=str(body.get("rule", "")), column=str(body.get("column", "")), **kw)
    if code in ("invalid_query", "invalid_input"):
        return InvalidQuery(detail, field=str(body.get("field", "")), **kw)
    if code in ("subscription_not_active", "outside_term", "unit_not_qualified"):
        state = str(body.get("state", ""))
        sub = body.get("subscription")
        if code == "unit_not_qualified" or state == "suspended":
            return SubscriptionSuspended(detail, subscription=sub, state=state or "unit_suspended", **kw)
        if code == "outside_term" or state == "expired":
            return SubscriptionExpired(detail, subscription=sub, state=state or "expired", **kw)
        return SubscriptionInactive(detail, subscription=sub, state=state, **kw)
    if code in _NOT_ENTITLED:
        return NotEntitled(detail, product=str(body.get("product") or product or "") or None, **kw)
    if code in _AUTH or status == 401:
        return AuthenticationFailed(detail, **kw)
    if code in ("product_unavailable", "product_data_missing"):
        return ProductUnavailable(detail, **kw)
    if status >= 500 or code == "metering_unavailable":
        return ServiceUnavailable(detail, **kw)
    return ShuyunError(detail, **kw)


__all__ = [
    "AuthenticationFailed",
    "InvalidQuery",
    "NotEntitled",
    "PolicyViolation",
    "PrivacyBudgetExhausted",
    "ProductUnavailable",
    "QuotaExceeded",
    "ResultUnreadable",
    "ServiceUnavailable",
    "ShuyunError",
    "SubscriptionExpired",
    "SubscriptionInactive",
    "SubscriptionSuspended",
    "from_problem",
]
