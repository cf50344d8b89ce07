"""``POST /v1/workspace/sessions``: workspace time is metered through the API (art. 8, 23).

A workspace (JupyterLab server, locally from ``shuyun workspace launch``, in production a
JupyterHub single-user server) holds only the API credentials of its unit member, never
the store's. Its server extension (``marketplace.jupyter_ext``) reports the workspace's
opening and closing and each kernel's start and end here, with the workspace's own token;
the API checks the token live exactly as for a query (client and token not revoked, unit
qualified, member still in the unit, subscription active and in the token's scope) and
records the event on the subscription's usage ledger as ``workspace_session`` use, as the
member: recorded as time, never counted against the query quota.

Retries are safe: an event is identified by its ``session`` and ``sequence`` (the use id
``ws-<session>-<sequence>-<event>``), and the ledger counts a use id once; a replay answers
200 with ``counted: false`` instead of 201. A refused event is recorded on the ledger it
concerns (under a fresh use id, so that a refusal never collides with a counted retry)
and answered with an RFC 9457 problem, like a refused query.

The event's logic lives here rather than in ``v1`` (whose authentication helpers it
reuses) because it is a concern of its own: reporting time, not releasing data.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

from starlette.requests import Request
from starlette.responses import Response

from domain.errors import DomainError, InvalidInput, parse_enum, require_text
from domain.licensing import Subscription
from domain.usage import UsageKind
from marketplace.api import problems, v1
from marketplace.api.metering import Metered, MeteringUnavailable, Use
from marketplace.api.state import ApiState, state_of
from marketplace.api.tokens import TokenClaims
from marketplace.services.credentials import Access, Loader

MAX_EVENT_BYTES = 4096
#: The longest a kernel or a workspace can plausibly have run: a year, in seconds.
MAX_SECONDS = 366 * 24 * 3600.0
#: What the ledger records as the product version of a workspace event (no product is read).
PRODUCT_VERSION = "workspace"


class WorkspaceEvent(Enum):
    WORKSPACE_OPENED = "workspace_opened"
    KERNEL_STARTED = "kernel_started"
    KERNEL_ENDED = "kernel_ended"
    WORKSPACE_CLOSED = "workspace_closed"

    @property
    def about_kernel(self) -> bool:
        return self in (WorkspaceEvent.KERNEL_STARTED, WorkspaceEvent.KERNEL_ENDED)

    @property
    def ends(self) -> bool:
        """An end carries how long the kernel or the workspace ran."""
        return self in (WorkspaceEvent.KERNEL_ENDED, WorkspaceEvent.WORKSPACE_CLOSED)


FIELDS = ("event", "session", "sequence", "subscription", "kernel_id", "kernel_name", "seconds", "path")


@dataclass(frozen=True)
class SessionEvent:
    """One reported workspace event, validated."""

    event: WorkspaceEvent
    session: UUID
    sequence: int
    subscription: UUID | None = None
    kernel_id: str | None = None
    kernel_name: str | None = None
    seconds: float | None = None
    path: str | None = None

    @property
    def use_id(self) -> str:
        return f"ws-{self.session}-{self.sequence}-{self.event.value}"

    def record(self) -> dict[str, Any]:
        """What the ledger stores as the use's ``query`` (the keys the usage read models know)."""
        out: dict[str, Any] = {"workspace": self.event.value, "session": str(self.session),
                               "sequence": self.sequence}
        for key in ("kernel_id", "kernel_name", "seconds", "path"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def parse_session_event(body: bytes) -> SessionEvent:
    """The event a request body reports; ``InvalidInput`` names the field at fault."""
    if len(body) > MAX_EVENT_BYTES:
        raise InvalidInput("body", f"is {len(body)} bytes; at most {MAX_EVENT_BYTES}")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInput("body", "must be a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidInput("body", f"must be a JSON object, got {type(data).__name__}")
    unknown = sorted(k for k in data if k not in FIELDS)
    if unknown:
        raise InvalidInput(unknown[0], f"is not a field of a workspace event; known: {', '.join(FIELDS)}")
    event = parse_enum("event", WorkspaceEvent, data.get("event"))
    session = _uuid("session", data.get("session"))
    sequence = data.get("sequence")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not 0 <= sequence <= 10**9:
        raise InvalidInput("sequence", f"must be a whole number from 0 to 1000000000; got {sequence!r}")
    subscription = None if data.get("subscription") is None else _uuid("subscription", data["subscription"])
    kernel_id = _optional_text(data, "kernel_id", 200)
    if event.about_kernel and kernel_id is None:
        raise InvalidInput("kernel_id", f"is required for {event.value}")
    seconds = data.get("seconds")
    if event.ends:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) \
                or not 0 <= seconds <= MAX_SECONDS:
            raise InvalidInput("seconds", f"is required for {event.value}: a number from 0 to {MAX_SECONDS:.0f}; "
                                          f"got {seconds!r}")
        seconds = round(float(seconds), 3)
    elif seconds is not None:
        raise InvalidInput("seconds", f"belongs to an end (kernel_ended, workspace_closed), not {event.value}")
    return SessionEvent(
        event=event, session=session, sequence=sequence, subscription=subscription, kernel_id=kernel_id,
        kernel_name=_optional_text(data, "kernel_name", 100), seconds=seconds, path=_optional_text(data, "path", 500),
    )


def _uuid(field: str, value: object) -> UUID:
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be an id (text); got {value!r}")
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInput(field, f"is not a valid id: {value!r}") from None


def _optional_text(data: dict[str, Any], field: str, max_length: int) -> str | None:
    value = data.get(field)
    return None if value is None else require_text(field, value, max_length=max_length)


# -- the endpoint -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedEvent:
    """An event decided but not yet answered: the answer waits until ``use`` is stored."""

    use: Use | None
    event: SessionEvent | None
    answer: Response | None
    refusal: DomainError | None
    path: str
    now: datetime


async def workspace_session_endpoint(request: Request) -> Response:
    state = state_of(request)
    body = await request.body()
    prepared = await state.run(prepare_event, state, v1.presented(request), body, request.url.path)
    if prepared.use is None:
        return finish_event(prepared, None)
    try:
        outcome: Metered | BaseException = await asyncio.wrap_future(state.meter.submit(prepared.use))
    except Exception as error:  # finish_event decides the answer
        outcome = error
    return finish_event(prepared, outcome)


def prepare_event(state: ApiState, credentials: v1.Presented, body: bytes, path: str) -> PreparedEvent:
    """Authenticate, validate, authorise live: everything but the metering (a worker thread's part)."""
    now = state.clock()
    claims: TokenClaims | None = None
    access: Access | None = None
    event: SessionEvent | None = None
    try:
        claims = v1.verified(state, credentials)
        event = parse_session_event(body)
        load = state.live.loader()
        wanted = event.subscription or _first_active(claims, load)
        access = state.mp.credentials.authorise(
            client_id=claims.client_id, unit_id=claims.unit_id, user_id=claims.user_id, jti=claims.jti,
            scope=claims.scope, product_id=None, subscription_id=wanted, at=now, load=load,
        )
    except DomainError as error:
        record = event.record() if event is not None else {"workspace": "unparsed", "body": _excerpt(body)}
        subscription = str(event.subscription) if event is not None and event.subscription else None
        use = v1.refusal_use(
            state, error, credentials=credentials, claims=claims, access=access, product_id=None,
            subscription=subscription, query=record, use_id=f"ws-refused-{uuid4()}", at=now,
        )
        return PreparedEvent(use, event, problems.from_error(error, instance=path, now=now), error, path, now)
    use = None
    if state.metered:
        use = Use(
            subscription=access.subscription, actor=access.actor, use_id=event.use_id, query=event.record(), at=now,
            kind=UsageKind.WORKSPACE_SESSION, product_version=PRODUCT_VERSION,
        )
    return PreparedEvent(use, event, None, None, path, now)


def finish_event(prepared: PreparedEvent, outcome: Metered | BaseException | None) -> Response:
    """201 once the event is on its ledger (200 for a replay), else the refusal as a problem document."""
    if prepared.refusal is not None:
        assert prepared.answer is not None
        if outcome is None or outcome is prepared.refusal:
            return prepared.answer
        if isinstance(outcome, DomainError):
            return problems.from_error(outcome, instance=prepared.path, now=prepared.now)
        unavailable = MeteringUnavailable("the refusal could not be recorded, so it is not answered; try again")
        return problems.from_error(unavailable, instance=prepared.path, now=prepared.now)
    assert prepared.event is not None
    if isinstance(outcome, DomainError):  # refused by the ledger (e.g. outside the term): recorded as refused
        return problems.from_error(outcome, instance=prepared.path, now=prepared.now)
    if outcome is not None and not isinstance(outcome, Metered):
        unavailable = MeteringUnavailable("the workspace event could not be recorded; try again")
        return problems.from_error(unavailable, instance=prepared.path, now=prepared.now)
    event = prepared.event
    counted = isinstance(outcome, Metered) and outcome.counted
    body = {
        "use_id": event.use_id, "event": event.event.value, "session": str(event.session),
        "sequence": event.sequence, "counted": counted,
        "subscription_id": str(prepared.use.subscription.id) if prepared.use else None,
    }
    return v1.json_response(body, status=201 if counted else 200)


def _first_active(claims: TokenClaims, load: Loader) -> UUID:
    """The token's first active subscription (its first one if none is: the live check then says why)."""
    for subscription_id in claims.scope:
        try:
            if load(Subscription, subscription_id).is_active:
                return subscription_id
        except DomainError:
            continue
    if not claims.scope:
        raise InvalidInput("subscription", "this token covers no subscription")
    return claims.scope[0]


def _excerpt(body: bytes) -> str:
    return body[:300].decode("utf-8", "replace")
