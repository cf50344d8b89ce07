"""``POST /v1/workspace/sessions`` and the workspace's session recorder, over real HTTP (SQLite and PostgreSQL).

A workspace holds only its member's API credentials; its Jupyter extension reports
workspace time with them. These tests speak to a real API process (``tests/api/conftest``)
and read the ledgers it wrote: an event is recorded as the token's member, as time (no
query quota), once per session and sequence; every refusal is a specific RFC 9457
problem, recorded as refused where it concerns a subscription; the recorder behind the
extension never lets a refusal or an outage break the workspace.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from domain.usage import UsageKind  # noqa: E402
from marketplace.api.sessions import FIELDS, parse_session_event  # noqa: E402
from marketplace.client import Client, ServiceUnavailable, ShuyunError, WorkspaceConfig, connect  # noqa: E402
from marketplace.client.config import write_config, write_secret  # noqa: E402
from marketplace.jupyter_ext import SessionRecorder  # noqa: E402
from tests.api import conftest as api_conftest  # noqa: E402
from tests.api.conftest import World, tenant  # noqa: E402

#: the API tests' seeded world (SQLite and PostgreSQL), used here by name
world = api_conftest.world

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PATH = "/v1/workspace/sessions"


def post(world: World, token: str | None, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with world.http() as http:
        return http.post(PATH, content=json.dumps(body) if not isinstance(body, bytes) else body,
                         headers={**headers, "Content-Type": "application/json"})


def event(kind: str = "workspace_opened", **extra: Any) -> dict[str, Any]:
    return {"event": kind, "session": str(uuid4()), "sequence": 0, **extra}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code and problem["status"] == status
    assert problem["type"] == f"urn:shuyun:problem:{code}" and problem["detail"] and problem["instance"] == PATH
    return problem


def workspace_uses(world: World, subscription: UUID) -> list[Any]:
    ledger = world.ledger(subscription)
    if ledger is None:
        return []
    return [e for e in world.mp.app.events.get(ledger.id)
            if type(e).__name__ == "UseRecorded" and e.kind is UsageKind.WORKSPACE_SESSION]  # type: ignore[attr-defined]


def sdk(world: World, client: tuple[UUID, str], tmp_path: Path) -> Client:
    secret = tmp_path / "credentials" / "client_secret"
    write_secret(secret, client[1])
    config = tmp_path / "credentials" / "workspace.json"
    write_config(config, WorkspaceConfig(api_url=world.url, client_id=str(client[0]), secret_file=secret))
    return connect(config)


# -- the endpoint ------------------------------------------------------------------------------------


def test_art23_a_workspace_event_is_recorded_as_the_member_and_as_time_not_a_query(world: World) -> None:
    t = tenant(world)
    token = world.token(t.client)
    body = event("kernel_ended", kernel_id="k-1", kernel_name="python3", seconds=12.5, path="/ws/a")
    response = post(world, token, body)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer == {"use_id": f"ws-{body['session']}-0-kernel_ended", "event": "kernel_ended",
                      "session": body["session"], "sequence": 0, "counted": True,
                      "subscription_id": str(t.subscription)}
    (use,) = workspace_uses(world, t.subscription)
    assert use.user_id == t.unit.analyst.user_id and use.use_id == answer["use_id"]
    assert json.loads(use.query) == {"workspace": "kernel_ended", "session": body["session"], "sequence": 0,
                                     "kernel_id": "k-1", "kernel_name": "python3", "seconds": 12.5,
                                     "path": "/ws/a"}
    ledger = world.ledger(t.subscription)
    assert ledger is not None and ledger.queries_used == 0 and ledger.rows_used == 0


def test_art23_a_resent_event_is_recorded_once(world: World) -> None:
    t = tenant(world)
    token = world.token(t.client)
    body = event()
    assert post(world, token, body).status_code == 201
    again = post(world, token, body)
    assert again.status_code == 200 and again.json()["counted"] is False
    assert len(workspace_uses(world, t.subscription)) == 1
    assert post(world, token, {**body, "sequence": 1}).status_code == 201
    assert len(workspace_uses(world, t.subscription)) == 2


def test_art23_the_named_subscription_is_used_and_must_be_in_the_token(world: World) -> None:
    token = world.token(world.client_a)
    response = post(world, token, event(subscription=str(world.sub_a_open)))
    assert response.status_code == 201 and response.json()["subscription_id"] == str(world.sub_a_open)
    assert_problem(post(world, token, event(subscription=str(world.sub_b3))), 403, "scope_not_allowed")


def test_rfc9457_no_token_is_refused_and_nothing_recorded(world: World) -> None:
    before = world.mp.app.recorder.max_notification_id()
    assert_problem(post(world, None, event()), 401, "invalid_token")
    assert_problem(post(world, "not-a-token", event()), 401, "invalid_token")
    assert world.mp.app.recorder.max_notification_id() == before


@pytest.mark.parametrize(("body", "field"), [
    ({"session": "9f6c3f4e-0000-4000-8000-000000000001", "sequence": 0}, "event"),
    (event("workspace_reopened"), "event"),
    ({**event(), "session": "not-a-uuid"}, "session"),
    ({**event(), "sequence": -1}, "sequence"),
    ({**event(), "sequence": True}, "sequence"),
    (event("kernel_started"), "kernel_id"),
    (event("kernel_ended", kernel_id="k"), "seconds"),
    (event("workspace_closed", seconds=-3), "seconds"),
    (event("workspace_opened", seconds=3), "seconds"),
    ({**event(), "rows": 5}, "rows"),
    (b"[1, 2]", "body"),
    (b"not json", "body"),
])
def test_art8_a_malformed_event_names_its_field_and_is_recorded_as_refused(
    world: World, body: Any, field: str
) -> None:
    t = tenant(world)
    token = world.token(t.client)
    problem = assert_problem(post(world, token, body), 422, "invalid_input")
    assert problem["field"] == field
    assert world.refusals(t.subscription) == ["invalid_input"]
    assert workspace_uses(world, t.subscription) == []


def test_art34_suspended_subscription_refuses_workspace_time_and_records_the_attempt(world: World) -> None:
    t = tenant(world)
    token = world.token(t.client)
    world.mp.licensing.suspend_subscription(world.people.admin, t.subscription, reason="misuse suspected")
    assert_problem(post(world, token, event()), 409, "subscription_not_active")
    assert world.refusals(t.subscription) == ["subscription_not_active"]
    assert workspace_uses(world, t.subscription) == []


def test_art34_a_revoked_client_or_removed_member_reports_nothing(world: World) -> None:
    t = tenant(world)
    token = world.token(t.client)
    world.mp.parties.remove_member(t.unit.admin, t.unit.id, user_id=t.unit.analyst.user_id)
    assert_problem(post(world, token, event()), 403, "member_removed")
    other = tenant(world)
    token = world.token(other.client)
    world.mp.credentials.revoke_client(other.unit.admin, other.client[0], reason="workspace deleted")
    assert_problem(post(world, token, event()), 401, "client_revoked")
    assert workspace_uses(world, t.subscription) == workspace_uses(world, other.subscription) == []


def test_the_endpoint_is_in_the_openapi_document(world: World) -> None:
    with world.http() as http:
        spec = http.get("/openapi.json").json()
    operation = spec["paths"][PATH]["post"]
    assert set(operation["responses"]) >= {"201", "200", "401", "403", "409", "422"}
    schema = spec["components"]["schemas"]["WorkspaceEvent"]
    assert set(schema["required"]) == {"event", "session", "sequence"}
    assert "lz4" in spec["paths"]["/v1/products/{product_id}/query"]["post"]["description"]


@given(data=st.dictionaries(st.sampled_from(["event", "session", "sequence", "kernel_id", "seconds", "path", "x"]),
                            st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=8), st.floats()), max_size=6))
def test_any_event_body_parses_or_names_a_field(data: dict[str, Any]) -> None:
    """Property (no server): a body is either a valid event or refused with an InvalidInput naming a field."""
    from domain.errors import InvalidInput

    try:
        parsed = parse_session_event(json.dumps(data).encode())
    except InvalidInput as error:
        assert error.field in (*FIELDS, "body", "x") and error.message.startswith(f"{error.field}: ")
    else:
        assert parsed.use_id.startswith(f"ws-{parsed.session}-{parsed.sequence}-")
        assert parsed.sequence >= 0 and (parsed.seconds is None or parsed.seconds >= 0)


# -- the recorder behind the Jupyter extension ---------------------------------------------------------


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


def test_art23_recorder_reports_open_kernels_and_close_through_the_api(world: World, tmp_path: Path) -> None:
    t = tenant(world)
    sy = sdk(world, t.client, tmp_path)
    recorder = SessionRecorder(sy, workspace="/ws", clock=Ticks())
    recorder.opened()
    recorder.kernel_started("k1", "python3")
    recorder.kernel_started("k2", "python3")
    recorder.kernel_ended("k1")
    recorder.kernel_ended("unknown")  # never started here: nothing to report
    recorder.closed()  # ends k2 first
    uses = [json.loads(u.query) | {"user": u.user_id} for u in workspace_uses(world, t.subscription)]
    assert [u["workspace"] for u in uses] == ["workspace_opened", "kernel_started", "kernel_started",
                                              "kernel_ended", "kernel_ended", "workspace_closed"]
    assert [u["sequence"] for u in uses] == list(range(6))
    assert [u.get("kernel_id") for u in uses[3:5]] == ["k1", "k2"]
    assert all(u["user"] == t.unit.analyst.user_id and u["path"] == "/ws" for u in uses)
    assert len({u["session"] for u in uses}) == 1
    assert uses[-1]["seconds"] > 0 and uses[3]["seconds"] > 0
    recorder.closed()  # closing twice reports nothing more
    assert len(workspace_uses(world, t.subscription)) == 6 and recorder.failed == []
    ledger = world.ledger(t.subscription)
    assert ledger is not None and ledger.queries_used == 0  # time, not queries


def test_art34_refused_report_is_logged_not_raised(world: World, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    t = tenant(world)
    sy = sdk(world, t.client, tmp_path)
    sy.entitlements()  # a token is held from before the suspension
    world.mp.licensing.suspend_subscription(world.people.admin, t.subscription, reason="suspected resale")
    recorder = SessionRecorder(sy, workspace="/ws", sleep=lambda s: None)
    recorder.opened()
    recorder.kernel_started("k1")
    assert recorder.failed == ["workspace_opened", "kernel_started"] and recorder.recorded == []
    assert "subscription_not_active" in caplog.text
    assert workspace_uses(world, t.subscription) == []


class Flaky:
    """A sink that fails ``failures`` times with ``error`` before accepting."""

    def __init__(self, failures: int, error: ShuyunError) -> None:
        self.failures, self.error = failures, error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def record_workspace_event(self, event: str, **fields: Any) -> dict[str, Any]:
        self.calls.append((event, fields))
        if self.failures:
            self.failures -= 1
            raise self.error
        return {"counted": True}


def test_an_unreachable_api_is_retried_with_the_same_sequence_then_given_up() -> None:
    slept: list[float] = []
    sink = Flaky(2, ShuyunError("connection refused", code="unreachable"))
    recorder = SessionRecorder(sink, sleep=slept.append)
    recorder.opened()
    assert recorder.recorded == ["workspace_opened"] and len(slept) == 2
    assert {c[1]["sequence"] for c in sink.calls} == {0} and len(sink.calls) == 3
    down = Flaky(10, ServiceUnavailable("metering down", code="metering_unavailable"))
    recorder = SessionRecorder(down, sleep=lambda s: None)
    recorder.opened()
    assert recorder.failed == ["workspace_opened"] and len(down.calls) == 3
    refused = Flaky(10, ShuyunError("bad", code="invalid_input"))
    recorder = SessionRecorder(refused, sleep=lambda s: None)
    recorder.opened()
    assert recorder.failed == ["workspace_opened"] and len(refused.calls) == 1  # a refusal is not retried


@given(events=st.lists(st.tuples(st.sampled_from(["start", "end"]), st.sampled_from(["a", "b", "c"])), max_size=12))
def test_recorder_never_ends_a_kernel_it_did_not_start_nor_twice(events: list[tuple[str, str]]) -> None:
    """Property (no server): reports pair every end with an earlier start of that kernel, numbered in order."""
    sink = Flaky(0, ShuyunError("unused"))
    recorder = SessionRecorder(sink)
    recorder.opened()
    for action, kernel in events:
        if action == "start" and kernel not in recorder.kernels:
            recorder.kernel_started(kernel)
        elif action == "end":
            recorder.kernel_ended(kernel)
    recorder.closed()
    recorded = [(what, str(fields.get("kernel_id", ""))) for what, fields in sink.calls]
    assert [fields["sequence"] for _, fields in sink.calls] == list(range(len(sink.calls)))
    running: set[str] = set()
    for what, kernel in recorded:
        if what == "kernel_started":
            assert kernel not in running
            running.add(kernel)
        elif what == "kernel_ended":
            assert kernel in running
            running.remove(kernel)
    assert not running and recorded[0][0] == "workspace_opened" and recorded[-1][0] == "workspace_closed"
