"""Sandbox queries over real HTTP: results, formats, readouts, and what never leaves (art. 8, 22, 23, 35)."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import httpx
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.client.arrow import ACCEPT_ARROW, read_frame
from tests.api.conftest import DISTRICTS, World, data_product, water_frame
from tests.scenario import active_subscription, approved_application

QUERY = {"dimensions": ["district"], "aggregates": [{"fn": "count", "alias": "n"}]}


def post(world: World, token: str, product: UUID, body: Any, accept: str = "application/json",
         **params: str) -> httpx.Response:
    with world.http() as http:
        return http.post(f"/v1/products/{product}/query", json=body, params=params,
                         headers={"Authorization": f"Bearer {token}", "Accept": accept})


def test_art23_a_query_answers_with_json_and_metering_headers(world: World) -> None:
    response = post(world, world.token(), world.water3, QUERY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == ["district", "n"]
    assert int(response.headers["x-shuyun-rows-out"]) == len(body["rows"]) == body["meta"]["rows_out"]
    assert response.headers["x-shuyun-watermark"] == body["meta"]["watermark_id"]
    assert response.headers["x-shuyun-product-version"] == "1"
    assert response.headers["x-shuyun-subscription"] == str(world.sub_a3)
    assert float(response.headers["x-shuyun-epsilon-spent"]) == 0.0
    assert int(response.headers["x-shuyun-remaining-rows"]) >= 0
    # grade 3: every released group stands for at least k=10 readings; the tiny district is suppressed
    assert int(response.headers["x-shuyun-suppressed-groups"]) >= 0
    assert all(isinstance(row[1], int) for row in body["rows"])


def test_art23_arrow_ipc_stream_carries_the_same_result(world: World) -> None:
    token = world.token()
    as_json = post(world, token, world.water3, QUERY).json()
    response = post(world, token, world.water3, QUERY, accept="application/vnd.apache.arrow.stream")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.column_names == as_json["columns"]
    assert [list(r.values()) for r in table.to_pylist()] == as_json["rows"]  # same noise for the same query


def test_art22_the_same_query_gets_the_same_noisy_answer(world: World) -> None:
    token = world.token()
    body = {"dimensions": ["district", "month"], "aggregates": [{"fn": "count"}]}
    first, second = post(world, token, world.water3, body).json(), post(world, token, world.water3, body).json()
    assert first["rows"] == second["rows"]


def test_art22_rows_leave_only_an_open_product_whose_delivery_mode_allows_it(world: World) -> None:
    token = world.token()
    response = post(world, token, world.open2, {"mode": "rows", "columns": ["district", "consumption_m3"],
                                                "limit": 7})
    assert response.status_code == 200, response.text
    assert response.json()["columns"] == ["district", "consumption_m3"] and len(response.json()["rows"]) == 7
    ledger = world.ledger(world.sub_a_open)
    assert ledger is not None and ledger.rows_used >= 7


AGGREGATES: list[dict[str, Any]] = [
    {"fn": "count"}, {"fn": "count_distinct", "column": "holder_name"}, {"fn": "min", "column": "consumption_m3"},
    {"fn": "max", "column": "consumption_m3"}, {"fn": "sum", "column": "consumption_m3"},
    {"fn": "quantile", "column": "consumption_m3", "q": 0.5}, {"fn": "min", "column": "holder_name"},
]


def _agg_key(agg: dict[str, Any]) -> tuple[str, str]:
    return str(agg["fn"]), str(agg.get("column"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dims=st.lists(st.sampled_from(["district", "month", "consumption_m3", "holder_name"]), max_size=3, unique=True),
    aggs=st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=3, unique_by=_agg_key),
    district=st.sampled_from([None, "固阳县", "昆都仑区"]),
    rows_mode=st.booleans(),
)
def test_art22_no_raw_row_of_a_grade3_product_ever_leaves(
    world: World, dims: list[str], aggs: list[dict[str, Any]], district: str | None, rows_mode: bool
) -> None:
    if rows_mode:
        body: dict[str, Any] = {"mode": "rows", "columns": dims or ["district"]}
    else:
        body = {"dimensions": dims, "aggregates": aggs}
    if district:
        body["filters"] = [{"column": "district", "op": "eq", "value": district}]
    response = post(world, world.token(), world.water3, body)
    text = response.text
    assert "户主" not in text  # no personal value, ever
    if response.status_code != 200:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.status_code in (400, 403)
        return
    assert not rows_mode
    raw = world.raw
    records = {(r["district"], str(r["month"]), r["consumption_m3"]) for r in raw.iter_rows(named=True)}
    result = response.json()
    columns = result["columns"]
    for row in result["rows"]:
        values = dict(zip(columns, row, strict=True))
        if {"district", "month", "consumption_m3"} <= values.keys():
            key = (values["district"], values["month"], values["consumption_m3"])
            assert key not in records, f"a raw record left the sandbox: {key}"
    assert len(result["rows"]) <= raw.height // 10  # every released group stands for >= 10 readings


def test_art23_product_description_says_the_policy_in_plain_words(world: World) -> None:
    with world.http() as http:
        response = http.get(f"/v1/products/{world.water3}", headers={"Authorization": f"Bearer {world.token()}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["grade"] == "general_3" and body["version"]["number"] == 1
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["holder_name"]["personal"] and not fields["holder_name"]["in_subscription_scope"]
    assert any("Aggregates only" in line for line in body["policy"]["summary"])
    assert body["policy"]["min_group_size"] == 10 and "holder_name" in body["policy"]["never_output"]
    assert body["remaining"]["queries"] <= body["subscription"]["entitlements"]["queries_per_period"]


def test_art23_entitlements_and_usage_show_own_subscriptions_only(world: World) -> None:
    token = world.token()
    post(world, token, world.water3, QUERY)
    with world.http() as http:
        entitlements = http.get("/v1/entitlements", headers={"Authorization": f"Bearer {token}"}).json()
        usage = http.get("/v1/usage", headers={"Authorization": f"Bearer {token}"}).json()
        other = http.get("/v1/usage", params={"subscription": str(world.sub_b3)},
                         headers={"Authorization": f"Bearer {token}"})
    assert {s["id"] for s in entitlements["subscriptions"]} == {str(world.sub_a3), str(world.sub_a_open)}
    by_id = {u["subscription_id"]: u for u in usage["usage"]}
    ledger = world.ledger(world.sub_a3)
    assert ledger is not None and by_id[str(world.sub_a3)]["queries_used"] == ledger.queries_used
    assert by_id[str(world.sub_a3)]["recent"][0]["outcome"] == "counted"
    assert other.status_code == 403 and other.json()["code"] == "scope_not_allowed"


def test_art8_concurrent_queries_are_each_metered_once(world: World) -> None:
    token = world.token()
    before = world.ledger(world.sub_a3)
    used = before.queries_used if before else 0
    statuses: list[int] = []
    use_ids: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with world.http() as http:
            for _ in range(10):
                r = http.post(f"/v1/products/{world.water3}/query", json=QUERY,
                              headers={"Authorization": f"Bearer {token}"})
                with lock:
                    statuses.append(r.status_code)
                    use_ids.append(r.headers.get("x-shuyun-use-id", ""))

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 60
    ledger = world.ledger(world.sub_a3)
    assert ledger is not None and ledger.queries_used == used + 60
    assert set(use_ids) <= set(ledger.uses) and len(set(use_ids)) == 60


def test_art23_the_privacy_budget_of_a_general4_product_is_spent_and_then_refused(world: World) -> None:
    mp, people = world.mp, world.people
    product = data_product(mp, people, name="Grade 4 water", grade="general_4", openness="conditional",
                           frame=water_frame(3000, seed=11))
    application = approved_application(mp, people, world.unit_a, product, fields=["district", "consumption_m3"])
    subscription = active_subscription(mp, people, unit=world.unit_a, product_id=product,
                                       application_id=application,
                                       entitlements={"queries_per_period": 100, "rows_per_period": 10_000,
                                                     "privacy_budget": 1.0})
    client = mp.credentials.issue_client(world.unit_a.admin, unit_id=world.unit_a.id,
                                         user_id=world.unit_a.analyst.user_id, label="dp",
                                         subscription_ids=[subscription])
    token = world.token((client.client_id, client.client_secret))
    first = post(world, token, product, QUERY)
    assert first.status_code == 200, first.text
    spent = float(first.headers["x-shuyun-epsilon-spent"])
    assert 0 < spent <= 1.0
    assert float(first.headers["x-shuyun-remaining-budget"]) == round(1.0 - spent, 12)
    repeated = 0
    while repeated < 20:
        response = post(world, token, product, {**QUERY, "filters": [
            {"column": "consumption_m3", "op": "gt", "value": float(repeated)}]})
        repeated += 1
        if response.status_code != 200:
            break
    assert response.status_code in (403, 429), response.text
    assert response.json()["code"] == "privacy_budget_exhausted"
    ledger = world.ledger(subscription)
    assert ledger is not None and ledger.budget_used <= 1.0 and ledger.refusals == 1


def test_art22_row_level_results_to_the_sdk_are_narrowed_from_their_version(world: World) -> None:
    """The API narrows a version's columns once and takes each row-level result's from there
    (``marketplace.api.wire.VersionWire``): the SDK still gets exactly the rows the JSON answer has, and a
    result of one district's rows gets the version's dictionary of codes (not one of its own), naming only
    that district."""
    token = world.token()
    one = {"column": "district", "op": "eq", "value": DISTRICTS[0]}
    for body in ({"mode": "rows", "columns": ["district", "consumption_m3"], "limit": 40},
                 {"mode": "rows", "columns": ["consumption_m3", "district"], "filters": [one],
                  "order_by": [{"column": "consumption_m3", "desc": True}], "limit": 30}):
        as_json = post(world, token, world.open2, body).json()
        response = post(world, token, world.open2, body, accept=ACCEPT_ARROW)
        assert response.status_code == 200, response.text
        frame = read_frame([response.content], expected_rows=len(as_json["rows"]))
        assert frame.columns == as_json["columns"] and [list(row) for row in frame.rows()] == as_json["rows"]
    dictionary = pa.ipc.open_stream(response.content).read_all().column("district").chunk(0).dictionary.to_pylist()
    assert set(dictionary) - {None} == {DISTRICTS[0]}
    assert len(dictionary) >= world.raw["district"].n_unique() > 1  # the version's code range
