"""The API's caches never outlive what they stand for (art. 22, 23, 34).

The live checks share catch-up rounds between concurrent requests, product versions
are held in memory with their grouped results, and queries, validations and marks are
remembered; none of it may delay a suspension, serve an old version, or change an answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any
from uuid import UUID

import httpx

from domain.identity import Actor, Role
from marketplace.api import v1
from marketplace.api.app import build_state
from marketplace.api.state import ApiState
from marketplace.sandbox import policy as sandbox_policy
from marketplace.sandbox import query as sandbox_query
from marketplace.sandbox import watermark
from tests.api.conftest import World, data_product, store_version, tenant
from tests.scenario import active_subscription, approved_application

ADMIN = Actor("admin", Role.OPERATOR_ADMIN)
BODY = {"dimensions": ["district", "month"], "aggregates": [{"fn": "count"}, {"fn": "max", "column": "consumption_m3"}]}


def post(world: World, token: str, product: UUID, body: Any = BODY) -> httpx.Response:
    with world.http() as http:
        return http.post(f"/v1/products/{product}/query", json=body, headers={"Authorization": f"Bearer {token}"})


def test_art34_a_suspension_bites_on_every_query_sent_after_it_while_others_keep_querying(world: World) -> None:
    t = tenant(world, queries=100_000)
    token = world.token(t.client)
    seen: list[tuple[float, int, str]] = []  # (sent at, status, problem code)
    stop = threading.Event()

    def hammer() -> None:
        with world.http() as http:
            while not stop.is_set():
                sent = time.monotonic()
                response = http.post(f"/v1/products/{world.water3}/query", json=BODY,
                                     headers={"Authorization": f"Bearer {token}"})
                code = "" if response.status_code == 200 else response.json().get("code", "")
                seen.append((sent, response.status_code, code))

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        world.mp.licensing.suspend_subscription(ADMIN, t.subscription, reason="misuse suspected")
        suspended = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    before = [s for s in seen if s[0] < suspended]
    after = [s for s in seen if s[0] > suspended]
    assert any(status == 200 for _, status, _ in before)
    assert after and all((status, code) == (409, "subscription_not_active") for _, status, code in after)
    refused = sum(1 for _, status, _ in seen if status == 409)
    assert world.refusals(t.subscription).count("subscription_not_active") == refused  # every refusal is metered


def test_art22_a_new_product_version_is_served_not_the_cached_old_one(world: World) -> None:
    people = world.people
    frame = world.raw.drop("holder_name")
    product = data_product(world.mp, people, name="Versioned water statistics", grade="general_1",
                           openness="unconditional", frame=frame, fields=[
                               {"name": "district", "dtype": "category", "description": "District"},
                               {"name": "month", "dtype": "date", "description": "Month"},
                               {"name": "consumption_m3", "dtype": "float", "description": "Cubic metres"}])
    application = approved_application(world.mp, people, world.unit_a, product,
                                       fields=["district", "month", "consumption_m3"])
    subscription = active_subscription(world.mp, people, unit=world.unit_a, product_id=product,
                                       application_id=application)
    client = world.mp.credentials.issue_client(world.unit_a.admin, unit_id=world.unit_a.id,
                                               user_id=world.unit_a.analyst.user_id, label="versions",
                                               subscription_ids=[subscription])
    token = world.token((client.client_id, client.client_secret))
    total = {"aggregates": [{"fn": "count"}]}
    first = post(world, token, product, total)
    assert first.status_code == 200, first.text
    assert first.json()["rows"] == [[frame.height]] and first.headers["x-shuyun-product-version"] == "1"
    assert post(world, token, product, total).json()["rows"] == [[frame.height]]  # now from the cache

    doubled = frame.vstack(frame)
    content_hash = store_version(world.config, doubled)
    world.mp.products.register_product_version(people.product_manager, product, content_hash=content_hash,
                                               row_count=doubled.height)
    in_review = post(world, token, product, total)
    assert in_review.status_code == 409 and in_review.json()["code"] == "product_unavailable"
    world.mp.products.review_compliance(people.reviewer, product, approved=True, reason="version 2 checked")
    second = post(world, token, product, total)
    assert second.status_code == 200, second.text
    assert second.json()["rows"] == [[doubled.height]] and second.headers["x-shuyun-product-version"] == "2"


def _forget_everything(state: ApiState) -> None:
    """Empty every cache a repeated query could be answered from."""
    state.data.results.clear()
    sandbox_query._PARSED.clear()
    sandbox_policy._VALIDATED.clear()
    watermark._MARKS.clear()
    v1._RECORDED.clear()


def _bearer(state: ApiState, client: tuple[UUID, str], path: str) -> v1.Presented:
    api_client = state.mp.credentials.authenticate_client(str(client[0]), client[1])
    grant = state.mp.credentials.grant(api_client, requested=None, at=state.clock())
    token, _ = state.tokens.issue(user_id=grant.actor.user_id, unit_id=grant.unit_id, client_id=grant.client_id,
                                  scope=grant.scope, now=state.clock())
    return v1.Presented.bearer(token, url=f"http://api{path}")


def test_art22_the_same_noisy_answer_before_and_after_the_caches_are_emptied(world: World) -> None:
    t = tenant(world)
    state = build_state(world.config)
    path = f"/v1/products/{world.water3}/query"
    body = b'{"dimensions": ["district"], "aggregates": [{"fn": "count"}, {"fn": "max", "column": "consumption_m3"}]}'
    try:
        credentials = _bearer(state, t.client, path)
        first = v1.run_query(state, credentials, str(world.water3), None, body, "", path)
        cached = v1.run_query(state, credentials, str(world.water3), None, body, "", path)
        assert first.status_code == 200, bytes(first.body)
        assert state.data.results.release_hits >= 1  # the repeated query got its kept release
        _forget_everything(state)
        fresh = v1.run_query(state, credentials, str(world.water3), None, body, "", path)
        assert first.status_code == cached.status_code == fresh.status_code == 200
        assert bytes(first.body) == bytes(cached.body) == bytes(fresh.body)  # same noise, same watermark
        assert first.headers["x-shuyun-watermark"] == fresh.headers["x-shuyun-watermark"]
    finally:
        state.close()
    ledger = world.ledger(t.subscription)
    assert ledger is not None and ledger.queries_used == 3  # every answer was metered


def test_art34_the_in_process_query_path_sees_a_suspension_at_once(world: World) -> None:
    t = tenant(world)
    state = build_state(world.config)
    path = f"/v1/products/{world.water3}/query"
    body = b'{"dimensions": ["district"], "aggregates": [{"fn": "count"}]}'

    async def ask(credentials: v1.Presented) -> tuple[int, bytes]:
        responses = await asyncio.gather(*(
            v1.answer_query(state, credentials, str(world.water3), None, body, "", path) for _ in range(8)))
        assert len({bytes(r.body) for r in responses}) == 1  # concurrent requests share one catch-up round
        return responses[0].status_code, bytes(responses[0].body)

    try:
        credentials = _bearer(state, t.client, path)
        status, _ = asyncio.run(ask(credentials))
        assert status == 200
        world.mp.licensing.suspend_subscription(ADMIN, t.subscription, reason="misuse suspected")
        status, answer = asyncio.run(ask(credentials))
        assert status == 409 and b"subscription_not_active" in answer
    finally:
        state.close()
    assert world.refusals(t.subscription) == ["subscription_not_active"] * 8
