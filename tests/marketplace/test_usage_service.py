"""Usage metering on a real SQLite file and a real PostgreSQL server (art. 8, 23, 26)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from domain.licensing import BUSINESS_TZ, OutsideTerm, Subscription, SubscriptionNotActive
from domain.usage import (
    OutOfScope,
    PrivacyBudgetExhausted,
    QuotaExceeded,
    Remaining,
    UsageLedger,
    next_period_start,
    period_of,
)
from marketplace.bootstrap import Marketplace, build
from marketplace.services.base import Clock
from marketplace.services.usage import UsageService
from tests.scenario import Staff, Unit, active_subscription, listed_product, qualified_unit, refused, staff

SMALL = {"queries_per_period": 3, "rows_per_period": 100, "privacy_budget": 0.5}


@pytest.fixture
def world(marketplace: Marketplace) -> tuple[Marketplace, Staff, Unit, UUID]:
    people = staff(marketplace)
    unit = qualified_unit(marketplace, people)
    product_id = listed_product(marketplace, people)
    return marketplace, people, unit, active_subscription(
        marketplace, people, unit=unit, product_id=product_id, entitlements=SMALL
    )


def use(mp: Marketplace | UsageService, actor: Any, subscription_id: UUID, /, **overrides: Any) -> Any:
    service = mp.usage if isinstance(mp, Marketplace) else mp
    args: dict[str, Any] = dict(
        subscription_id=subscription_id, kind="query", product_version=1,
        query={"group_by": ["district"], "aggregate": {"consumption_m3": "sum"}},
        fields=["district", "consumption_m3"], rows_out=10, budget_spent=0.1,
    )
    args.update(overrides)
    return service.record_use(actor, **args)


def ledger_of(mp: Marketplace, subscription_id: UUID, at: datetime | None = None) -> UsageLedger:
    return mp.usage.get(UsageLedger, UsageLedger.create_id(subscription_id, period_of(at or mp.usage.clock())))


def service_at(mp: Marketplace, clock: Clock) -> UsageService:
    return UsageService(mp.app, clock=clock)


def recorded_refusal(mp: Marketplace, error: type[DomainError], command: Any) -> DomainError:
    """The use is refused with ``error`` AND the refusal is saved on the ledger."""
    before = mp.app.recorder.max_notification_id() or 0
    with pytest.raises(error) as caught:
        command()
    assert caught.value.code == error.code
    assert (mp.app.recorder.max_notification_id() or 0) > before, "the refusal was not recorded"
    return caught.value


# -- counting (art. 8, 23) --------------------------------------------------------------------------
def test_art8_a_use_is_recorded_and_the_receipt_says_what_is_left(world: Any) -> None:
    mp, _, unit, subscription_id = world
    receipt = use(mp, unit.analyst, subscription_id, use_id="job-1")
    assert receipt.counted and receipt.use_id == "job-1"
    assert receipt.ledger_id == UsageLedger.create_id(subscription_id, receipt.period)
    assert receipt.remaining == Remaining(receipt.period, 2, 90, 0.4, next_period_start(receipt.period))
    assert receipt.notification_id == mp.app.recorder.max_notification_id()
    ledger = mp.usage.get(UsageLedger, receipt.ledger_id)
    assert (ledger.queries_used, ledger.rows_used, ledger.unit_id) == (1, 10, unit.id)


def test_art8_a_retried_use_is_counted_once(world: Any) -> None:
    mp, _, unit, subscription_id = world
    use(mp, unit.analyst, subscription_id, use_id="job-1")
    before = mp.app.recorder.max_notification_id()
    again = use(mp, unit.analyst, subscription_id, use_id="job-1")
    assert not again.counted
    assert mp.app.recorder.max_notification_id() == before
    assert ledger_of(mp, subscription_id).queries_used == 1


def test_art23_query_quota_refusal_is_recorded_and_says_when_it_resets(world: Any) -> None:
    mp, _, unit, subscription_id = world
    for _ in range(3):
        use(mp, unit.analyst, subscription_id, rows_out=1, budget_spent=0)
    error = recorded_refusal(mp, QuotaExceeded, lambda: use(mp, unit.analyst, subscription_id, rows_out=1))
    assert isinstance(error, QuotaExceeded) and error.quota == "queries"
    assert error.reset_on == next_period_start(period_of(mp.usage.clock()))
    ledger = ledger_of(mp, subscription_id)
    assert (ledger.queries_used, ledger.refusals) == (3, 1)


def test_art23_row_quota_and_privacy_budget_refusals_are_recorded(world: Any) -> None:
    mp, _, unit, subscription_id = world
    use(mp, unit.analyst, subscription_id, rows_out=95, budget_spent=0.45)
    rows = recorded_refusal(mp, QuotaExceeded, lambda: use(mp, unit.analyst, subscription_id, rows_out=6))
    assert isinstance(rows, QuotaExceeded) and rows.quota == "rows"
    recorded_refusal(
        mp, PrivacyBudgetExhausted, lambda: use(mp, unit.analyst, subscription_id, rows_out=1, budget_spent=0.1)
    )
    ledger = ledger_of(mp, subscription_id)
    assert (ledger.queries_used, ledger.rows_used, ledger.budget_used, ledger.refusals) == (1, 95, 0.45, 2)


def test_art23_a_field_outside_the_scope_is_refused_and_recorded(world: Any) -> None:
    mp, _, unit, subscription_id = world
    error = recorded_refusal(
        mp, OutOfScope, lambda: use(mp, unit.analyst, subscription_id, fields=["district", "meter_serial"])
    )
    assert "meter_serial" in error.message
    ledger = ledger_of(mp, subscription_id)
    assert (ledger.queries_used, ledger.refusals) == (0, 1)


def test_art34_use_of_a_suspended_subscription_is_refused_and_recorded(world: Any) -> None:
    mp, people, unit, subscription_id = world
    mp.licensing.suspend_subscription(people.admin, subscription_id, reason="investigation")
    recorded_refusal(mp, SubscriptionNotActive, lambda: use(mp, unit.analyst, subscription_id))
    assert ledger_of(mp, subscription_id).refusals == 1


def test_art23_use_after_the_term_is_refused_and_recorded(world: Any) -> None:
    mp, _, unit, subscription_id = world
    term_end = mp.licensing.get(Subscription, subscription_id).term_end
    after = datetime(term_end.year, term_end.month, term_end.day, 12, tzinfo=BUSINESS_TZ) + timedelta(days=1)
    recorded_refusal(mp, OutsideTerm, lambda: use(service_at(mp, lambda: after), unit.analyst, subscription_id))
    assert ledger_of(mp, subscription_id, after).refusals == 1


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"kind": "scrape"}, "kind"),
        ({"rows_out": -1}, "rows_out"),
        ({"budget_spent": "lots"}, "budget_spent"),
        ({"query": "SELECT * FROM water"}, "query"),
        ({"fields": "district"}, "fields"),
        ({"product_version": ""}, "product_version"),
        ({"subscription_id": "nope"}, "subscription_id"),
    ],
)
def test_art8_malformed_use_is_not_a_use_and_changes_nothing(
    world: Any, overrides: dict[str, Any], field: str
) -> None:
    mp, _, unit, subscription_id = world
    with refused(mp, InvalidInput) as error:
        use(mp, unit.analyst, subscription_id, **overrides)
    assert error.value.field == field


def test_art23_only_current_members_of_the_unit_use_its_subscription(world: Any) -> None:
    mp, people, unit, subscription_id = world
    other = qualified_unit(mp, people, name="别的公司", code_body="91150200MA0N7X2C2", admin_user="o-admin")
    for actor in (other.admin, other.analyst, people.admin, people.product_manager):
        with refused(mp, PermissionDenied):
            use(mp, actor, subscription_id)
    mp.parties.remove_member(unit.admin, unit.id, user_id=unit.analyst.user_id)
    with refused(mp, PermissionDenied):
        use(mp, unit.analyst, subscription_id)
    with refused(mp, NotFound):
        use(mp, unit.admin, uuid4())


# -- remaining, periods, entitlements -----------------------------------------------------------------
def test_art26_remaining_is_full_before_any_use_and_shrinks_after(world: Any) -> None:
    mp, people, unit, subscription_id = world
    period = period_of(mp.usage.clock())
    assert mp.usage.remaining(unit.analyst, subscription_id) == Remaining(
        period, 3, 100, 0.5, next_period_start(period)
    )
    use(mp, unit.analyst, subscription_id)
    assert mp.usage.remaining(people.supervisor, subscription_id).queries == 2
    other = qualified_unit(mp, people, name="别的公司", code_body="91150200MA0N7X2C2", admin_user="o-admin")
    with pytest.raises(PermissionDenied):
        mp.usage.remaining(other.admin, subscription_id)


def test_art23_each_month_has_its_own_ledger_and_quota(world: Any) -> None:
    mp, _, unit, subscription_id = world
    for _ in range(3):
        use(mp, unit.analyst, subscription_id, rows_out=0, budget_spent=0)
    now = mp.usage.clock()
    first_of_next = next_period_start(period_of(now))
    next_month = datetime(first_of_next.year, first_of_next.month, 1, 9, tzinfo=BUSINESS_TZ)
    term_end: date = mp.licensing.get(Subscription, subscription_id).term_end
    assert next_month.date() <= term_end
    receipt = use(service_at(mp, lambda: next_month), unit.analyst, subscription_id)
    assert receipt.counted and receipt.period == period_of(next_month) != period_of(now)
    assert receipt.remaining.queries == 2


def test_art23_changed_entitlements_apply_to_the_current_ledger(world: Any) -> None:
    mp, people, unit, subscription_id = world
    for _ in range(3):
        use(mp, unit.analyst, subscription_id, rows_out=0, budget_spent=0)
    with pytest.raises(QuotaExceeded):
        use(mp, unit.analyst, subscription_id)
    mp.licensing.change_entitlements(
        people.admin, subscription_id, entitlements={**SMALL, "queries_per_period": 5}, reason="upgrade"
    )
    assert mp.usage.remaining(unit.analyst, subscription_id).queries == 2
    assert use(mp, unit.analyst, subscription_id).remaining.queries == 1
    assert ledger_of(mp, subscription_id).entitlements.queries_per_period == 5


def test_art8_ledger_survives_snapshots_and_a_reopened_store(world: Any) -> None:
    mp, people, unit, subscription_id = world
    mp.licensing.change_entitlements(
        people.admin, subscription_id,
        entitlements={"queries_per_period": 1000, "rows_per_period": 10**6, "privacy_budget": 100},
        reason="load test",
    )
    tricky = {"_type_": "uuid_hex", "_data_": "not a uuid"}
    for i in range(60):
        use(mp, unit.analyst, subscription_id, use_id=f"job-{i}", query=tricky, rows_out=i, budget_spent=0.01)
    reopened = build(mp.config)
    try:
        ledger = reopened.usage.get(UsageLedger, UsageLedger.create_id(subscription_id, period_of(mp.usage.clock())))
        assert (ledger.queries_used, ledger.rows_used) == (60, sum(range(60)))
        assert ledger.budget_used == pytest.approx(0.6)
        assert len(ledger.uses) == 60
        snapshots = list(reopened.app.snapshots.get(ledger.id)) if reopened.app.snapshots else []
        assert snapshots, "a growing ledger is snapshotted"
    finally:
        reopened.close()


def test_usage_on_a_pending_subscription_is_refused(world: Any) -> None:
    mp, people, unit, _ = world
    other_product = listed_product(mp, people, name="Bus trips by stop")
    pending_id = active_subscription(mp, people, unit=unit, product_id=other_product, sign=False)
    recorded_refusal(mp, SubscriptionNotActive, lambda: use(mp, unit.analyst, pending_id))
    ledger = ledger_of(mp, pending_id)
    assert (ledger.queries_used, ledger.refusals) == (0, 1)
