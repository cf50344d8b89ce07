"""The SDK without a server: query builder, error mapping, tokens, config and display.

The builder's output must be what the sandbox's own parser accepts (and means the same),
so it is checked against ``marketplace.sandbox.query.parse``, with hypothesis generating
builder call sequences. HTTP is simulated with ``httpx.MockTransport`` so token refresh
and the mapping of every problem code can be driven exactly.
"""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from marketplace.client import (  # noqa: E402
    AuthenticationFailed,
    Client,
    ConfigError,
    Entitlements,
    InvalidQuery,
    NotEntitled,
    PolicyViolation,
    PrivacyBudgetExhausted,
    ProductUnavailable,
    QuotaExceeded,
    ServiceUnavailable,
    ShuyunError,
    SubscriptionExpired,
    SubscriptionInactive,
    SubscriptionSuspended,
    WorkspaceConfig,
    connect,
    load_config,
)
from marketplace.client.config import write_config, write_secret  # noqa: E402
from marketplace.client.errors import from_problem  # noqa: E402
from marketplace.sandbox.query import parse  # noqa: E402

PRODUCT = "0b7a3f8e-1d5c-4c1e-9a51-6f0f2b9f1a11"
SUB = "5e0f6a9c-2b1d-4f7e-8a3b-1c2d3e4f5a6b"

# -- fixtures -----------------------------------------------------------------------------------


class FakeApi:
    """A scripted API: counts tokens issued, answers queries with Arrow or a given problem."""

    def __init__(self) -> None:
        self.tokens = 0
        self.expire_next = 0
        self.problem: tuple[int, dict[str, Any]] | None = None
        self.token_problem: tuple[int, dict[str, Any]] | None = None
        self.seen: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            if self.token_problem:
                return httpx.Response(self.token_problem[0], json=self.token_problem[1])
            self.tokens += 1
            return httpx.Response(200, json={"access_token": f"t{self.tokens}", "token_type": "Bearer",
                                             "expires_in": 300})
        if self.expire_next:
            self.expire_next -= 1
            return httpx.Response(401, json={"code": "token_expired", "detail": "the token expired"})
        if self.problem:
            return httpx.Response(self.problem[0], json=self.problem[1])
        if request.url.path == "/v1/entitlements":
            return httpx.Response(200, json=ENTITLEMENTS)
        if request.url.path.endswith("/query"):
            self.seen.append(json.loads(request.content))
            buffer = io.BytesIO()
            pl.DataFrame({"district": ["青山区"], "n": [42]}).write_ipc_stream(buffer)
            return httpx.Response(200, content=buffer.getvalue(), headers={
                "content-type": "application/vnd.apache.arrow.stream", "x-shuyun-rows-out": "1",
                "x-shuyun-epsilon-spent": "1.0", "x-shuyun-remaining-budget": "2.0",
                "x-shuyun-quota-resets": "2026-12-01", "x-shuyun-suppressed-groups": "3",
            })
        return httpx.Response(404, json={"code": "not_found", "detail": "no such resource"})


ENTITLEMENTS = {
    "unit_id": "u1", "user_id": "analyst", "subscriptions": [{
        "id": SUB, "product_id": PRODUCT, "status": "active", "status_reason": "", "fields": ["district"],
        "term": {"start": "2026-01-01", "end": "2026-12-31"},
        "entitlements": {"queries_per_period": 200, "rows_per_period": 50000, "privacy_budget": 3.0},
        "product": {"id": PRODUCT, "name": "Clinic visits <b>by age</b>"},
        "remaining": {"period": "2026-11", "queries": 199, "rows": 49000, "budget": 2.0, "reset_on": "2026-12-01"},
    }],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "credentials" / "client_secret"
    write_secret(path, "s3cret")
    return path


def client(api: FakeApi, secret_file: Path, clock: Clock | None = None) -> Client:
    config = WorkspaceConfig(api_url="http://api.test", client_id="c1", secret_file=secret_file,
                             subscriptions=(SUB,))
    http = httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(api))
    return Client(config, http=http, clock=clock or Clock())


# -- the builder -------------------------------------------------------------------------------


def test_builder_produces_the_sandbox_query_language(secret_file: Path) -> None:
    sy = client(FakeApi(), secret_file)
    q = (sy.query(PRODUCT).group_by("district").where("month", ">=", date(2024, 1, 1))
         .where("district", "in", ["青山区", "东河区"])
         .agg(count=..., mean="kwh", total=("sum", "kwh"), p90=("quantile", "kwh", 0.9))
         .order_by("total", desc=True).limit(10))
    parsed = parse(q.to_dict())
    assert parsed.dimensions == ("district",)
    assert [(f.column, f.op.value) for f in parsed.filters] == [("month", "gte"), ("district", "in")]
    assert parsed.filters[0].value == "2024-01-01"
    assert [(a.fn.value, a.column, a.alias) for a in parsed.aggregates] == [
        ("count", None, "count"), ("mean", "kwh", "mean_kwh"), ("sum", "kwh", "total"),
        ("quantile", "kwh", "p90"),
    ]
    assert parsed.order_by[0].desc and parsed.limit == 10


def test_builder_is_immutable(secret_file: Path) -> None:
    sy = client(FakeApi(), secret_file)
    base = sy.query(PRODUCT).group_by("district")
    a = base.agg(count=...)
    b = base.agg(mean="kwh")
    assert base.aggregates == () and a.aggregates != b.aggregates


def test_builder_rejects_unknown_operator_and_bad_agg_locally(secret_file: Path) -> None:
    sy = client(FakeApi(), secret_file)
    with pytest.raises(InvalidQuery, match="unknown operator '~'"):
        sy.query(PRODUCT).where("district", "~", "x")
    with pytest.raises(InvalidQuery, match="count takes no column"):
        sy.query(PRODUCT).agg(count="kwh")
    with pytest.raises(InvalidQuery, match=r"\(function, column\)"):
        sy.query(PRODUCT).agg(total=42)


NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
FNS = st.sampled_from(["sum", "mean", "min", "max", "count_distinct"])
OPS = st.sampled_from(["==", "!=", ">", ">=", "<", "<=", "eq", "gt"])
SCALARS = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=10), st.booleans())


@given(dims=st.lists(NAMES, unique=True, max_size=4), measures=st.lists(st.tuples(NAMES, FNS), max_size=4),
       filters=st.lists(st.tuples(NAMES, OPS, SCALARS), max_size=4), limit=st.none() | st.integers(1, 10**6))
def test_any_builder_sequence_parses_to_the_same_query(
    dims: list[str], measures: list[tuple[str, str]], filters: list[tuple[str, str, Any]], limit: int | None
) -> None:
    """Property: what the builder sends is a well-formed sandbox query with exactly what was built."""
    from marketplace.client.query import QueryBuilder

    q = QueryBuilder(client=None, product_id=PRODUCT).group_by(*dims).agg(count=...)  # type: ignore[arg-type]
    for alias, (column, fn) in enumerate(measures):
        q = q.agg(**{f"m{alias}": (fn, column)})
    for column, op, value in filters:
        if isinstance(value, bool) and op in (">", ">=", "<", "<=", "gt"):
            continue  # the parser refuses ordering on booleans, as it should
        q = q.where(column, op, value)
    if limit is not None:
        q = q.limit(limit)
    parsed = parse(json.loads(json.dumps(q.to_dict())))
    assert parsed.dimensions == tuple(dims)
    assert [a.alias for a in parsed.aggregates] == ["count", *(f"m{i}" for i in range(len(measures)))]
    assert len(parsed.filters) == len(q.filters)
    assert parsed.limit == limit


# -- errors --------------------------------------------------------------------------------------

PROBLEMS: list[tuple[int, dict[str, Any], type[ShuyunError]]] = [
    (429, {"code": "quota_exceeded", "detail": "queries quota", "quota": "queries", "reset_on": "2026-12-01"},
     QuotaExceeded),
    (403, {"code": "privacy_budget_exhausted", "detail": "budget", "needed": "1", "remaining": "0.5"},
     PrivacyBudgetExhausted),
    (403, {"code": "policy_violation", "detail": "no", "rule": "personal_field", "column": "patient_hash"},
     PolicyViolation),
    (400, {"code": "invalid_query", "detail": "bad", "field": "aggregates[0].fn"}, InvalidQuery),
    (409, {"code": "subscription_not_active", "detail": "suspended", "state": "suspended"}, SubscriptionSuspended),
    (409, {"code": "subscription_not_active", "detail": "expired", "state": "expired"}, SubscriptionExpired),
    (409, {"code": "subscription_not_active", "detail": "terminated", "state": "terminated"}, SubscriptionInactive),
    (409, {"code": "outside_term", "detail": "outside"}, SubscriptionExpired),
    (409, {"code": "unit_not_qualified", "detail": "unit suspended", "state": "suspended"}, SubscriptionSuspended),
    (403, {"code": "scope_not_allowed", "detail": "not yours", "product": PRODUCT}, NotEntitled),
    (403, {"code": "out_of_scope", "detail": "field"}, NotEntitled),
    (401, {"code": "invalid_token", "detail": "bad token"}, AuthenticationFailed),
    (409, {"code": "client_revoked", "detail": "revoked"}, AuthenticationFailed),
    (409, {"code": "product_unavailable", "detail": "in review"}, ProductUnavailable),
    (503, {"code": "metering_unavailable", "detail": "try again"}, ServiceUnavailable),
    (401, {"error": "invalid_client", "error_description": "wrong secret"}, AuthenticationFailed),
    (400, {"error": "invalid_scope", "error_description": "subscription x is expired, not active"},
     SubscriptionExpired),
    (400, {"error": "invalid_scope", "error_description": "subscription x is suspended, not active"},
     SubscriptionSuspended),
    (400, {"error": "invalid_scope", "error_description": "none of this client's subscriptions is active"},
     NotEntitled),
]


@pytest.mark.parametrize(("status", "body", "expected"), PROBLEMS, ids=[p[1].get("code", p[1].get("error", ""))
                                                                         + f"-{i}" for i, p in enumerate(PROBLEMS)])
def test_problem_codes_map_to_specific_exceptions(status: int, body: dict[str, Any],
                                                   expected: type[ShuyunError]) -> None:
    error = from_problem(status, body)
    assert type(error) is expected
    assert error.status == status and error.problem == body


def test_quota_exceeded_carries_the_reset_date_and_policy_violation_the_rule() -> None:
    quota = from_problem(429, PROBLEMS[0][1])
    assert isinstance(quota, QuotaExceeded) and quota.reset_on == date(2026, 12, 1) and quota.quota == "queries"
    policy = from_problem(403, PROBLEMS[2][1])
    assert isinstance(policy, PolicyViolation) and (policy.rule, policy.column) == ("personal_field", "patient_hash")
    assert "personal_field" in str(policy) and "patient_hash" in str(policy)
    scope = from_problem(403, PROBLEMS[9][1])
    assert isinstance(scope, NotEntitled) and scope.product == PRODUCT


@given(status=st.integers(400, 599), body=st.dictionaries(st.sampled_from(
    ["code", "detail", "error", "error_description", "reset_on", "rule", "column", "state", "needed"]),
    st.one_of(st.text(max_size=20), st.integers(), st.none()), max_size=6))
def test_any_problem_document_maps_to_an_sdk_error(status: int, body: dict[str, Any]) -> None:
    """Property: whatever a server answers, the SDK raises one of its own errors, never crashes mapping it."""
    assert isinstance(from_problem(status, body), ShuyunError)


# -- tokens and requests ----------------------------------------------------------------------------


def test_token_is_reused_then_refreshed_before_expiry(secret_file: Path) -> None:
    api, clock = FakeApi(), Clock()
    sy = client(api, secret_file, clock)
    sy.entitlements()
    sy.entitlements()
    assert api.tokens == 1
    clock.now += 300 - 29  # inside the refresh margin
    sy.entitlements()
    assert api.tokens == 2


def test_token_expired_answer_is_retried_once_with_a_fresh_token(secret_file: Path) -> None:
    api = FakeApi()
    sy = client(api, secret_file)
    api.expire_next = 1
    assert len(sy.entitlements()) == 1
    assert api.tokens == 2
    api.expire_next = 2
    with pytest.raises(AuthenticationFailed, match="expired"):
        sy.entitlements()


def test_collect_returns_polars_and_records_meta(secret_file: Path) -> None:
    api = FakeApi()
    sy = client(api, secret_file)
    frame = sy.query("clinic").group_by("district").agg(n="count").collect()
    assert frame.to_dicts() == [{"district": "青山区", "n": 42}]
    assert api.seen == [{"mode": "aggregate", "dimensions": ["district"],
                         "aggregates": [{"fn": "count", "alias": "n"}]}]
    assert sy.last_result is not None
    meta = sy.last_result.meta
    assert (meta.epsilon_spent, meta.budget_left, meta.suppressed_groups) == (1.0, 2.0, 3)
    assert meta.resets_on == date(2026, 12, 1)


def test_unknown_product_name_is_not_entitled_and_names_what_is(secret_file: Path) -> None:
    sy = client(FakeApi(), secret_file)
    with pytest.raises(NotEntitled, match="Bus ridership") as caught:
        sy.query("Bus ridership")
    assert "Clinic visits" in str(caught.value) and caught.value.product == "Bus ridership"


def test_query_refusal_raises_the_mapped_error(secret_file: Path) -> None:
    api = FakeApi()
    sy = client(api, secret_file)
    api.problem = (429, PROBLEMS[0][1])
    with pytest.raises(QuotaExceeded) as caught:
        sy.query(PRODUCT).agg(count=...).collect()
    assert caught.value.reset_on == date(2026, 12, 1)


def test_no_active_subscription_is_explained_by_asking_per_subscription(secret_file: Path) -> None:
    calls: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        calls.append(form.get("scope", ""))
        if "scope" in form:
            return httpx.Response(400, json={"error": "invalid_scope",
                                             "error_description": f"subscription {SUB} is expired, not active"})
        return httpx.Response(400, json={"error": "invalid_scope",
                                         "error_description": "none of this client's subscriptions is active"})

    sy = client(api, secret_file)  # type: ignore[arg-type]
    with pytest.raises(SubscriptionExpired):
        sy.entitlements()
    assert calls == ["", SUB]


# -- config and secret ------------------------------------------------------------------------------


def test_secret_readable_by_others_is_refused(secret_file: Path) -> None:
    os.chmod(secret_file, 0o644)
    with pytest.raises(AuthenticationFailed, match="must be 0600"):
        client(FakeApi(), secret_file).entitlements()


def test_config_round_trip_and_env_lookup(tmp_path: Path, secret_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "credentials" / "workspace.json"
    write_config(path, WorkspaceConfig(api_url="http://api.test/", client_id="c1", secret_file=secret_file,
                                       unit_id="u", member="m", subscriptions=(SUB,)))
    monkeypatch.setenv("SHUYUN_WORKSPACE_CONFIG", str(path))
    loaded = load_config()
    assert loaded.api_url == "http://api.test"
    assert loaded.secret() == "s3cret" and loaded.subscriptions == (SUB,)
    assert "s3cret" not in path.read_text()
    assert connect().config.client_id == "c1"


@pytest.mark.parametrize(("content", "match"), [
    (None, "no workspace configuration"), ("not json", "cannot read"), ("[]", "must be a JSON object"),
    ('{"api_url": "x", "client_id": "c"}', "'secret_file' is required"),
])
def test_bad_config_says_which_file_and_key(tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / "workspace.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


# -- display -----------------------------------------------------------------------------------------


def test_entitlements_render_as_escaped_html_and_polars() -> None:
    ents = Entitlements(ENTITLEMENTS)
    page = ents._repr_html_()
    assert "Clinic visits &lt;b&gt;by age&lt;/b&gt;" in page and "<b>by age</b>" not in page
    assert "2 of 3" in page and "199 of 200" in page and "2026-12-01" in page
    frame = ents.to_polars()
    assert frame["budget_left"].to_list() == [2.0] and frame["resets_on"].to_list() == [date(2026, 12, 1)]


def test_sdk_never_loads_the_store() -> None:
    """The SDK speaks HTTP only: importing it pulls in no event store, database driver or domain code."""
    import subprocess

    code = ("import sys, marketplace.client; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('eventsourcing', 'psycopg', 'sqlite3', 'domain', 'projections') or m in "
            "('marketplace.store', 'marketplace.bootstrap')]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
