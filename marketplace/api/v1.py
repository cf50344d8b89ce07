"""The data endpoints: entitlements, product descriptions, sandbox queries, own usage.

Every request carries a bearer token; it is verified (signature, expiry, audience) and
then checked LIVE against the store (client and token not revoked, unit qualified,
member still in the unit, subscription active and in the token's scope, product the
subscription's). A query is metered before its answer leaves, granted or refused
(art. 8, 23): an authentic token's refusal is recorded on the ledger of the subscription
it tried to use; a tampered token's on the stored client it names.

A query's path, which sets the API's throughput (issue 4): on the event loop, wait
(holding no thread) for the live cache to catch up past the request's arrival; in a
worker thread, verify, authorise, validate and execute (``prepare_query``) and hand the
use to the group-commit meter; back on the event loop, once the use is stored, send the
answer. Two cross-thread hand-offs per query, each shared with every other query of the
same catch-up round or meter batch.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from starlette.requests import Request
from starlette.responses import Response

from domain.credentials import ApiClient, ScopeNotAllowed
from domain.errors import DomainError, InvalidInput, NotFound
from domain.identity import SYSTEM, Actor
from domain.licensing import Subscription
from domain.products import DataProduct
from domain.usage import Remaining, UsageLedger, period_of
from marketplace.api import problems, queries, wire
from marketplace.api.dpop import InvalidDPoPProof
from marketplace.api.metering import Metered, MeteringUnavailable, Use
from marketplace.api.state import ApiState, parse_uuid, state_of
from marketplace.api.tokens import InvalidToken, TokenClaims, TokenExpired, unverified_client_id
from marketplace.sandbox.cache import BoundedCache
from marketplace.sandbox.query import PARSE_CACHE_TEXT
from marketplace.services.credentials import Access, Loader

ARROW_STREAM = "application/vnd.apache.arrow.stream"
MAX_QUERY_BYTES = 65_536
#: Recent uses listed by ``/v1/usage`` per subscription.
RECENT_USES = 50


# -- endpoints (async shells; the work runs in a worker thread) -------------------------------


async def entitlements_endpoint(request: Request) -> Response:
    state = state_of(request)
    return await state.run(entitlements, state, presented(request), request.url.path)


async def product_endpoint(request: Request) -> Response:
    state = state_of(request)
    return await state.run(
        describe_product, state, presented(request), request.path_params["product_id"],
        request.query_params.get("subscription"), request.url.path,
    )


async def query_endpoint(request: Request) -> Response:
    state = state_of(request)
    body = await request.body()
    scope = request.scope
    # What ``request.url.path`` and ``request.query_params`` give, without building the whole
    # URL or parsing an empty query string: this endpoint is the API's hot path.
    path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    subscription = request.query_params.get("subscription") if scope.get("query_string") else None
    return await answer_query(
        state, presented(request), request.path_params["product_id"],
        subscription, body, request.headers.get("accept", ""), path,
    )


async def answer_query(
    state: ApiState,
    credentials: Presented,
    product_id: str,
    subscription: str | None,
    body: bytes,
    accept: str,
    path: str,
) -> Response:
    """The query runs in a worker thread, which hands its use to the meter; the wait for the
    batch to commit holds no thread, and the event loop is woken once, with the answer.

    (One wake-up rather than two: the worker does not report back to the loop before the
    meter does. The loop's cross-thread wake-ups were a good part of a request's cost.)
    """
    arrived = time.monotonic()
    await state.live.afresh(since=arrived)  # the live checks will see all committed before now
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[Response] = loop.create_future()
    context = contextvars.copy_context()
    state.executor.submit(
        context.run, _answer_in_worker, state, loop, answered, arrived,
        credentials, product_id, subscription, body, accept, path,
    )
    return await answered


def _answer_in_worker(
    state: ApiState,
    loop: asyncio.AbstractEventLoop,
    answered: asyncio.Future[Response],
    arrived: float,
    credentials: Presented,
    product_id: str,
    subscription: str | None,
    body: bytes,
    accept: str,
    path: str,
) -> None:
    """``prepare_query`` in a worker thread; then the meter, or the loop directly, settles ``answered``."""
    try:
        prepared = prepare_query(state, credentials, product_id, subscription, body, accept, path, arrived=arrived)
    except BaseException as error:
        loop.call_soon_threadsafe(_settle, answered, error)
        return
    if prepared.use is None:
        loop.call_soon_threadsafe(_settle, answered, prepared.answer)
        return

    def metered(outcome: Metered | BaseException) -> None:  # on the loop, once the use is stored
        try:
            answer: Response | BaseException = finish_query(prepared, outcome)
        except Exception as error:
            answer = error
        _settle(answered, answer)

    try:
        state.meter.submit_to(prepared.use, loop, metered)
    except Exception as error:  # finish_query decides the answer (the meter is closed)
        loop.call_soon_threadsafe(metered, error)


def _settle(answered: asyncio.Future[Response], outcome: Response | BaseException) -> None:
    if answered.done():  # the request gave up waiting (its use is metered all the same)
        return
    if isinstance(outcome, BaseException):
        answered.set_exception(outcome)
    else:
        answered.set_result(outcome)


async def usage_endpoint(request: Request) -> Response:
    state = state_of(request)
    return await state.run(
        usage, state, presented(request), request.query_params.get("subscription"),
        request.url.path,
    )


# -- handlers ----------------------------------------------------------------------------------


def entitlements(state: ApiState, credentials: Presented, path: str) -> Response:
    """The token's subscriptions: product, status, term, fields in scope, entitlements, what is left."""
    now = state.clock()
    try:
        claims = verified(state, credentials)
        load = state.live.loader()
        state.mp.credentials.authorise_token(
            client_id=claims.client_id, unit_id=claims.unit_id, user_id=claims.user_id, jti=claims.jti,
            load=load,
        )
    except DomainError as error:
        return problems.from_error(error, instance=path, now=now)
    items = []
    for subscription_id in claims.scope:
        subscription = state.mp.credentials.get(Subscription, subscription_id)
        product = _product_or_none(state, subscription.product_id)
        items.append({
            **subscription_summary(subscription, now),
            "product": {"id": str(subscription.product_id), "name": product.name if product else None},
            "remaining": remaining_dict(remaining_for(state, subscription, now)),
        })
    return json_response({"unit_id": str(claims.unit_id), "user_id": claims.user_id, "subscriptions": items})


def describe_product(
    state: ApiState, credentials: Presented, product_id: str, subscription: str | None, path: str
) -> Response:
    """Data dictionary, the policy in plain words, and what the subscription has left."""
    now = state.clock()
    try:
        claims = verified(state, credentials)
        product_key = _path_uuid("product_id", product_id)
        load = state.live.loader()
        access = authorise(state, claims, product_key, subscription, now, load)
        product = load(DataProduct, product_key)
    except DomainError as error:
        return problems.from_error(error, instance=path, now=now)
    version = product.latest_version
    body = {
        "id": str(product.id),
        "name": product.name,
        "description": product.description,
        "category": product.category,
        "grade": product.grade.value,
        "delivery_modes": [m.value for m in product.delivery_modes],
        "status": product.status.value,
        "version": None if version is None else {
            "number": version.number, "content_hash": version.content_hash, "row_count": version.row_count,
        },
        "fields": [
            {
                "name": f.name, "type": f.dtype.value, "description": f.description, "personal": f.personal,
                "in_subscription_scope": f.name in access.subscription.fields,
            }
            for f in product.fields
        ],
        "policy": queries.describe_policy(product),
        "subscription": subscription_summary(access.subscription, now),
        "remaining": remaining_dict(remaining_for(state, access.subscription, now)),
    }
    return json_response(body)


@dataclass(frozen=True)
class PreparedQuery:
    """A query decided but not yet answered: the answer is released only once ``use`` is stored.

    ``use`` is what to meter (``None``: nothing can be metered, e.g. no token at all, or
    metering is off); ``answer`` is the response to send once it is stored; ``refusal``
    is set when the answer is a refusal (then ``use`` records that refusal).
    """

    use: Use | None
    answer: Response
    refusal: DomainError | None
    path: str
    now: datetime


def run_query(
    state: ApiState,
    credentials: Presented,
    product_id: str,
    subscription: str | None,
    body: bytes,
    accept: str,
    path: str,
) -> Response:
    """Authenticate, authorise live, validate, execute, meter (blocking), answer."""
    prepared = prepare_query(state, credentials, product_id, subscription, body, accept, path)
    if prepared.use is None:
        return prepared.answer
    try:
        outcome: Metered | BaseException = state.meter.record(prepared.use)
    except Exception as error:  # finish_query decides the answer
        outcome = error
    return finish_query(prepared, outcome)


def prepare_query(
    state: ApiState,
    credentials: Presented,
    product_id: str,
    subscription: str | None,
    body: bytes,
    accept: str,
    path: str,
    *,
    arrived: float | None = None,
) -> PreparedQuery:
    """Everything but the metering: the CPU-bound part, run in a worker thread.

    ``arrived``: when the request arrived (``time.monotonic()``), if the caller already
    awaited ``state.live.afresh(since=arrived)``; else the live cache catches up here.
    """
    now = state.clock()
    use_id = str(uuid4())
    query_obj = _query_object(body)
    claims: TokenClaims | None = None
    access: Access | None = None
    product_key = parse_uuid(product_id)
    try:
        if len(body) > MAX_QUERY_BYTES:
            raise InvalidInput("query", f"is {len(body)} bytes; at most {MAX_QUERY_BYTES}")
        claims = verified_token(state, credentials)
        check_binding(state, credentials, claims)
        if product_key is None:
            product_key = _path_uuid("product_id", product_id)  # raises: not an id
        load = state.live.loader(since=arrived)
        access = authorise(state, claims, product_key, subscription, now, load)
        product = load(DataProduct, product_key)
        outcome = queries.execute(state, product, access.subscription, body)
    except DomainError as error:
        use = refusal_use(
            state, error, credentials=credentials, claims=claims, access=access, product_id=product_key,
            subscription=subscription, query=query_obj, use_id=use_id, at=now,
        )
        return PreparedQuery(use, problems.from_error(error, instance=path, now=now), error, path, now)
    headers = {
        "X-Shuyun-Use-Id": use_id,
        "X-Shuyun-Rows-Out": str(outcome.rows_out),
        "X-Shuyun-Epsilon-Spent": repr(outcome.epsilon_spent),
        "X-Shuyun-Watermark": outcome.watermark,
        "X-Shuyun-Product-Version": str(outcome.version),
        "X-Shuyun-Subscription": str(access.subscription.id),
    }
    if outcome.suppressed_groups is not None:  # under differential privacy even that count is not released
        headers["X-Shuyun-Suppressed-Groups"] = str(outcome.suppressed_groups)
    if ARROW_STREAM in accept:
        source = queries.released_rows(state, outcome) if wire.arrow_narrow(accept) else None
        answer = wire.arrow_response(outcome.frame, accept, headers, source)
    else:
        body_out = {"columns": outcome.frame.columns, "rows": outcome.frame.rows(), "meta": outcome.meta()}
        answer = json_response(body_out, headers)
    use = None
    if state.metered:
        use = Use(
            subscription=access.subscription, actor=access.actor, use_id=use_id, query=query_obj, at=now,
            product_version=str(outcome.version), fields=outcome.fields, rows_out=outcome.rows_out,
            budget_spent=outcome.epsilon_spent,
        )
    return PreparedQuery(use, answer, None, path, now)


def finish_query(prepared: PreparedQuery, outcome: Metered | BaseException) -> Response:
    """The answer to send now that metering is over: the result only if its use was stored."""
    if prepared.refusal is not None:
        if outcome is prepared.refusal:  # the meter stored the refusal and raised it back
            return prepared.answer
        if isinstance(outcome, DomainError):
            return problems.from_error(outcome, instance=prepared.path, now=prepared.now)
        unavailable = MeteringUnavailable("the refusal could not be metered, so it is not answered; try again")
        return problems.from_error(unavailable, instance=prepared.path, now=prepared.now)
    if isinstance(outcome, Metered):
        # Appended as raw headers: none of these names is set yet, and ``MutableHeaders``
        # would scan every header for each of them.
        prepared.answer.raw_headers.extend(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in remaining_headers(outcome.remaining).items()
        )
        return prepared.answer
    if isinstance(outcome, DomainError):  # refused by the ledger (quota, budget, scope): recorded, no result
        return problems.from_error(outcome, instance=prepared.path, now=prepared.now)
    unavailable = MeteringUnavailable("the query could not be metered, so no result is returned; try again")
    return problems.from_error(unavailable, instance=prepared.path, now=prepared.now)


def usage(state: ApiState, credentials: Presented, subscription: str | None, path: str) -> Response:
    """This month's usage of the token's subscriptions (or one of them): totals, what is left, recent uses."""
    now = state.clock()
    try:
        claims = verified(state, credentials)
        load = state.live.loader()
        state.mp.credentials.authorise_token(
            client_id=claims.client_id, unit_id=claims.unit_id, user_id=claims.user_id, jti=claims.jti,
            load=load,
        )
        ids = list(claims.scope)
        if subscription is not None:
            wanted = _path_uuid("subscription", subscription)
            if wanted not in ids:
                raise ScopeNotAllowed(f"subscription {wanted} is not in this token's scope", subscription=wanted)
            ids = [wanted]
    except DomainError as error:
        return problems.from_error(error, instance=path, now=now)
    items = []
    for subscription_id in ids:
        sub = state.mp.credentials.get(Subscription, subscription_id)
        ledger = state.meter.ledger(sub.id, now)
        items.append({
            "subscription_id": str(sub.id),
            "period": period_of(now),
            "queries_used": ledger.queries_used if ledger else 0,
            "rows_used": ledger.rows_used if ledger else 0,
            "budget_used": ledger.budget_used if ledger else 0.0,
            "refusals": ledger.refusals if ledger else 0,
            "remaining": remaining_dict(remaining_for(state, sub, now, ledger=ledger)),
            "recent": recent_uses(state, ledger) if ledger else [],
        })
    return json_response({"unit_id": str(claims.unit_id), "usage": items})


# -- authentication and authorisation -----------------------------------------------------------


@dataclass(frozen=True)
class Presented:
    """What a request presents to prove who it is: the Authorization and DPoP headers, for which request."""

    authorization: str | None
    dpop: str | None = None
    method: str = "GET"
    url: str = ""

    @classmethod
    def bearer(cls, token: str, *, method: str = "POST", url: str = "") -> Presented:
        return cls(f"Bearer {token}", None, method, url)

    def scheme_and_token(self) -> tuple[str, str]:
        if not self.authorization:
            raise InvalidToken("an access token is required: Authorization: Bearer <token> (or DPoP <token>)")
        scheme, _, token = self.authorization.partition(" ")
        if scheme.lower() not in ("bearer", "dpop") or not token.strip():
            raise InvalidToken("the Authorization header must be 'Bearer <token>' or 'DPoP <token>'")
        return scheme.lower(), token.strip()

    def token(self) -> str:
        return self.scheme_and_token()[1]


def presented(request: Request) -> Presented:
    headers = request.headers
    dpop = headers.get("dpop")
    # The URL is only checked against a DPoP proof; rebuilding it costs more than the rest.
    return Presented(headers.get("authorization"), dpop, request.method, str(request.url) if dpop else "")


def verified(state: ApiState, credentials: Presented) -> TokenClaims:
    """The token's claims, once its signature, expiry and (for a bound token) DPoP proof check out."""
    claims = verified_token(state, credentials)
    check_binding(state, credentials, claims)
    return claims


def verified_token(state: ApiState, credentials: Presented) -> TokenClaims:
    return state.tokens.verify(credentials.token(), now=state.clock())


def check_binding(state: ApiState, credentials: Presented, claims: TokenClaims) -> None:
    """A DPoP-bound token needs a proof by its key for this request; an unbound one, if the API allows it."""
    scheme, token = credentials.scheme_and_token()
    if claims.jkt is None:
        if scheme != "bearer":
            raise InvalidToken("this token is not DPoP-bound: present it as 'Bearer <token>'")
        if state.require_dpop:
            raise InvalidDPoPProof("this API accepts only DPoP-bound tokens (RFC 9449); request one with a proof")
        return
    if scheme != "dpop":
        raise InvalidDPoPProof("this token is DPoP-bound: present it as 'DPoP <token>' with a DPoP proof")
    proof = state.dpop.verify(credentials.dpop, method=credentials.method, url=credentials.url,
                              access_token=token, now=state.clock())
    if proof.jkt != claims.jkt:
        raise InvalidDPoPProof("the DPoP proof is signed by another key than the one the token is bound to")


def authorise(
    state: ApiState, claims: TokenClaims, product_id: UUID, subscription: str | None, at: datetime, load: Loader
) -> Access:
    subscription_id = None if subscription is None else _path_uuid("subscription", subscription)
    return state.mp.credentials.authorise(
        client_id=claims.client_id, unit_id=claims.unit_id, user_id=claims.user_id, jti=claims.jti,
        scope=claims.scope, product_id=product_id, subscription_id=subscription_id, at=at, load=load,
    )


def refusal_use(
    state: ApiState,
    error: DomainError,
    *,
    credentials: Presented,
    claims: TokenClaims | None,
    access: Access | None,
    product_id: UUID | None,
    subscription: str | None,
    query: Mapping[str, Any],
    use_id: str,
    at: datetime,
) -> Use | None:
    """The record of a refused query, on the ledger it concerns (``None``: there is no such ledger).

    Who is charged with the attempt: the live-checked subscription if the refusal came
    later; the subscription an authentic (maybe expired or revoked) token aimed at; for a
    tampered token, the stored client it names. A request with no token, or a token
    naming no client we know, has no ledger: it is refused without a record.
    """
    if not state.metered:
        return None
    if claims is None and isinstance(error, TokenExpired):
        claims = error.claims
    target: Subscription | None = access.subscription if access else None
    actor: Actor = access.actor if access else SYSTEM
    recorded_as = claims.user_id if claims else "unauthenticated"
    if target is None:
        target = _refusal_target(state, credentials, claims, product_id, subscription)
    if target is None:
        return None
    return Use(subscription=target, actor=actor, use_id=use_id, query=query, at=at, refusal=error,
               recorded_as=recorded_as)


def _refusal_target(
    state: ApiState,
    credentials: Presented,
    claims: TokenClaims | None,
    product_id: UUID | None,
    subscription: str | None,
) -> Subscription | None:
    service = state.mp.credentials
    client: ApiClient | None = None
    if claims is not None:
        scope: list[UUID] = list(claims.scope)
    else:
        try:
            client_id = unverified_client_id(credentials.token())
        except InvalidToken:
            return None
        if client_id is None:
            return None
        try:
            client = service.get(ApiClient, client_id)
        except NotFound:
            return None
        scope = list(client.subscription_ids)
    wanted = parse_uuid(subscription)
    try:
        return service.subscription_for(scope=scope, client=client, product_id=product_id, subscription_id=wanted)
    except DomainError:
        pass
    for subscription_id in scope:  # the attempt was outside the token: charge the token's first subscription
        try:
            return service.get(Subscription, subscription_id)
        except NotFound:
            continue
    return None


# -- readouts ------------------------------------------------------------------------------------


def subscription_summary(subscription: Subscription, at: datetime) -> dict[str, Any]:
    ent = subscription.entitlements
    return {
        "id": str(subscription.id),
        "product_id": str(subscription.product_id),
        "status": subscription.status.value,
        "status_reason": subscription.status_reason,
        "term": {"start": subscription.term_start.isoformat(), "end": subscription.term_end.isoformat()},
        "purpose_class": subscription.purpose_class.value,
        "fields": list(subscription.fields),
        "entitlements": {
            "queries_per_period": ent.queries_per_period, "rows_per_period": ent.rows_per_period,
            "privacy_budget": ent.privacy_budget, "period": ent.period,
        },
        "period": period_of(at),
    }


def remaining_for(
    state: ApiState, subscription: Subscription, at: datetime, *, ledger: UsageLedger | None = None
) -> Remaining:
    ledger = ledger or state.meter.ledger(subscription.id, at)
    if ledger is None:
        return Remaining.full(subscription.entitlements, period_of(at))
    return ledger.remaining(subscription.entitlements)


def remaining_dict(remaining: Remaining) -> dict[str, Any]:
    return {
        "period": remaining.period, "queries": remaining.queries, "rows": remaining.rows,
        "budget": remaining.budget, "reset_on": remaining.reset_on.isoformat(),
    }


def remaining_headers(remaining: Remaining) -> dict[str, str]:
    return {
        "X-Shuyun-Remaining-Queries": str(remaining.queries),
        "X-Shuyun-Remaining-Rows": str(remaining.rows),
        "X-Shuyun-Remaining-Budget": repr(remaining.budget),
        "X-Shuyun-Quota-Resets": remaining.reset_on.isoformat(),
    }


def recent_uses(state: ApiState, ledger: UsageLedger) -> list[dict[str, Any]]:
    """The ledger's latest uses and refusals, newest first (the events are the record)."""
    items = []
    for event in state.mp.app.events.get(ledger.id, desc=True, limit=RECENT_USES):
        name = type(event).__name__
        if name not in ("UseRecorded", "UseRefused"):
            continue
        item: dict[str, Any] = {
            "use_id": event.use_id,  # type: ignore[attr-defined]
            "at": event.at.isoformat(),  # type: ignore[attr-defined]
            "user_id": event.user_id,  # type: ignore[attr-defined]
            "query": json.loads(event.query),  # type: ignore[attr-defined]
        }
        if name == "UseRecorded":
            item.update(
                outcome="counted",
                product_version=event.product_version,  # type: ignore[attr-defined]
                rows_out=event.rows_out,  # type: ignore[attr-defined]
                budget_spent=event.budget_spent,  # type: ignore[attr-defined]
            )
        else:
            item.update(outcome="refused", reason=event.reason)  # type: ignore[attr-defined]
        items.append(item)
    return items


# -- helpers -------------------------------------------------------------------------------------


def json_response(body: Any, headers: Mapping[str, str] | None = None, status: int = 200) -> Response:
    text = json.dumps(body, ensure_ascii=False, default=str)
    return Response(text, status, dict(headers or {}), "application/json")


#: Recorded forms of recent query bodies (``_query_object``), by the exact bytes.
_RECORDED: BoundedCache[bytes, dict[str, Any]] = BoundedCache(1024)


def _query_object(body: bytes) -> dict[str, Any]:
    """The query as it will be recorded: the JSON object sent, or a note of what was sent instead.

    Remembered by the body's exact bytes (a client repeats its queries); the dict is only
    ever read (the ledger records its canonical JSON), never modified.
    """
    cacheable = len(body) <= PARSE_CACHE_TEXT
    if cacheable:
        found = _RECORDED.get(body)
        if found is not None:
            return found
    recorded = _record_form(body)
    if cacheable:
        _RECORDED.put(body, recorded)
    return recorded


def _record_form(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body[:MAX_QUERY_BYTES], parse_constant=lambda name: name)
    except (ValueError, RecursionError):
        return {"unparsed": body[:500].decode("utf-8", "replace")}
    if isinstance(data, dict) and all(isinstance(k, str) for k in data):
        try:
            json.dumps(data, allow_nan=False)
        except ValueError:
            return {"unparsed": body[:500].decode("utf-8", "replace")}
        return data
    return {"not_an_object": body[:500].decode("utf-8", "replace")}


def _path_uuid(field: str, value: str) -> UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise InvalidInput(field, f"is not a valid id: {value!r}")
    return parsed


def _product_or_none(state: ApiState, product_id: UUID) -> DataProduct | None:
    try:
        return state.mp.credentials.get(DataProduct, product_id)
    except NotFound:
        return None
