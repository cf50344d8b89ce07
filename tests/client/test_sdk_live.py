"""The SDK against a real API process, on SQLite and on PostgreSQL.

Uses the API tests' seeded world (``tests/api/conftest.py``): two units, a grade-3 product
with a personal field, an open product, and API clients. Each test writes the files a
workspace would hold and connects exactly as a notebook does.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from uuid import UUID

import polars as pl
import pytest
from polars.testing import assert_frame_equal

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from domain.usage import next_period_start, period_of  # noqa: E402
from marketplace.client import (  # noqa: E402
    AuthenticationFailed,
    Client,
    NotEntitled,
    PolicyViolation,
    QuotaExceeded,
    SubscriptionSuspended,
    WorkspaceConfig,
    connect,
)
from marketplace.client.arrow import ACCEPT_ARROW, ARROW_STREAM  # noqa: E402
from marketplace.client.config import write_config, write_secret  # noqa: E402
from tests.api import conftest as api_conftest  # noqa: E402
from tests.api.conftest import World, tenant  # noqa: E402

#: the API tests' seeded world (SQLite and PostgreSQL), used here by name
world = api_conftest.world

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def sdk(world: World, client: tuple[UUID, str], tmp_path: Path) -> Client:
    secret = tmp_path / "credentials" / "client_secret"
    write_secret(secret, client[1])
    config = tmp_path / "credentials" / "workspace.json"
    write_config(config, WorkspaceConfig(api_url=world.url, client_id=str(client[0]), secret_file=secret))
    return connect(config)


def used_queries(world: World, subscription: UUID) -> int:
    ledger = world.ledger(subscription)
    return ledger.queries_used if ledger else 0


def test_art23_entitlements_describe_and_query_come_back_metered(world: World, tmp_path: Path) -> None:
    sy = sdk(world, world.client_a, tmp_path)
    ents = sy.entitlements()
    assert {e.subscription_id for e in ents} == {str(world.sub_a3), str(world.sub_a_open)}
    info = sy.describe(str(world.water3))
    assert info.min_group_size == 10 and "holder_name" not in info.dimensions
    before = used_queries(world, world.sub_a3)
    result = (sy.query(str(world.water3)).group_by("district").agg(n="count", top=("max", "consumption_m3"))
              .order_by("n", desc=True).run())
    assert result.frame.columns == ["district", "n", "top"]
    assert min(result.frame["n"].to_list()) >= 10  # groups under k are suppressed, never returned
    assert used_queries(world, world.sub_a3) == before + 1
    assert result.meta.queries_left is not None and result.meta.watermark


def test_art23_a_product_of_another_unit_is_not_entitled_server_side(world: World, tmp_path: Path) -> None:
    sy = sdk(world, world.client_a, tmp_path)
    with pytest.raises(NotEntitled) as caught:
        sy.query(str(world.b_only)).agg(n="count").collect()
    assert caught.value.code == "scope_not_allowed"
    assert str(world.b_only) in caught.value.detail


def test_art35_policy_violation_names_the_personal_column(world: World, tmp_path: Path) -> None:
    sy = sdk(world, world.client_a, tmp_path)
    with pytest.raises(PolicyViolation) as caught:
        sy.query(str(world.water3)).group_by("holder_name").agg(n="count").collect()
    assert caught.value.column == "holder_name" and caught.value.rule


def test_art23_field_outside_the_subscription_is_not_entitled(world: World, tmp_path: Path) -> None:
    sy = sdk(world, world.client_a, tmp_path)
    with pytest.raises(NotEntitled) as caught:  # the open product's subscription excludes month
        sy.query(str(world.open2)).group_by("month").agg(n="count").collect()
    assert "month" in caught.value.detail


def test_art23_quota_exceeded_carries_the_reset_date(world: World, tmp_path: Path) -> None:
    t = tenant(world, queries=1)
    sy = sdk(world, t.client, tmp_path)
    sy.query(str(world.water3)).group_by("district").agg(n="count").collect()
    with pytest.raises(QuotaExceeded) as caught:
        sy.query(str(world.water3)).group_by("district").agg(n="count").collect()
    expected = next_period_start(period_of(world.mp.usage.clock()))
    assert caught.value.reset_on == expected and isinstance(caught.value.reset_on, date)
    assert caught.value.quota == "queries"


def test_art34_suspended_subscription_raises_subscription_suspended(world: World, tmp_path: Path) -> None:
    t = tenant(world)
    sy = sdk(world, t.client, tmp_path)
    sy.entitlements()  # a token is held from before the suspension
    world.mp.licensing.suspend_subscription(world.people.admin, t.subscription, reason="suspected resale")
    with pytest.raises(SubscriptionSuspended):
        sy.query(str(world.water3)).group_by("district").agg(n="count").collect()


def test_art23_wrong_secret_or_revoked_client_fails_authentication(world: World, tmp_path: Path) -> None:
    bad = sdk(world, (world.client_a[0], "not-the-secret"), tmp_path / "bad")
    with pytest.raises(AuthenticationFailed):
        bad.entitlements()
    t = tenant(world)
    sy = sdk(world, t.client, tmp_path / "revoked")
    world.mp.credentials.revoke_client(t.unit.admin, t.client[0], reason="analyst left")
    with pytest.raises(AuthenticationFailed):
        sy.entitlements()


def test_art23_compressed_and_plain_streams_of_the_real_api_carry_the_same_frame(world: World, tmp_path: Path) -> None:
    """The SDK gets LZ4 buffers; a client that does not ask (an old SDK, curl) still gets a plain stream."""
    sy = sdk(world, world.client_a, tmp_path)
    frame = sy.query(str(world.open2)).select("district", "consumption_m3").collect()
    assert frame.height == world.raw.height and sy.last_result is not None
    assert sy.last_result.meta.rows_out == frame.height
    query = {"mode": "rows", "columns": ["district", "consumption_m3"]}
    token = world.token()
    with world.http() as http:
        old, new = (http.post(f"/v1/products/{world.open2}/query", json=query,
                              headers={"Authorization": f"Bearer {token}", "Accept": accept})
                    for accept in (ARROW_STREAM, ACCEPT_ARROW))
    assert old.status_code == new.status_code == 200, old.text + new.text
    assert old.headers["content-type"] == ARROW_STREAM
    assert new.headers["content-type"] == f"{ARROW_STREAM}; codecs=lz4"
    assert_frame_equal(pl.read_ipc_stream(old.content), frame)
    assert_frame_equal(pl.read_ipc_stream(new.content), frame)
