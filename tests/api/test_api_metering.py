"""Group-commit metering on SQLite and PostgreSQL: batched, exact, never a result without its record (art. 8, 23)."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any
from uuid import uuid4

import pytest

from domain.errors import DomainError, PermissionDenied
from domain.licensing import Subscription
from domain.usage import QuotaExceeded, UsageLedger, period_of
from marketplace.api.metering import Metered, UsageMeter, Use
from marketplace.bootstrap import Marketplace
from tests.scenario import Unit, active_subscription, listed_product, qualified_unit, staff


@pytest.fixture
def metered(marketplace: Marketplace) -> tuple[Marketplace, Unit, list[Subscription]]:
    people = staff(marketplace)
    unit = qualified_unit(marketplace, people)
    subs = []
    for i, queries in enumerate((1000, 10)):
        product = listed_product(marketplace, people, name=f"Water use {i}")
        sid = active_subscription(marketplace, people, unit=unit, product_id=product,
                                  entitlements={"queries_per_period": queries, "rows_per_period": 100_000,
                                                "privacy_budget": 1.0})
        subs.append(marketplace.licensing.get(Subscription, sid))
    return marketplace, unit, subs


def use(mp: Marketplace, unit: Unit, subscription: Subscription, **overrides: Any) -> Use:
    args: dict[str, Any] = dict(subscription=subscription, actor=unit.analyst, use_id=str(uuid4()),
                                query={"dimensions": ["district"]}, at=mp.usage.clock(), product_version="1",
                                fields=("district",), rows_out=3)
    args.update(overrides)
    return Use(**args)


def ledger(mp: Marketplace, subscription: Subscription) -> UsageLedger:
    return mp.usage.get(UsageLedger, UsageLedger.create_id(subscription.id, period_of(mp.usage.clock())))


def test_art8_concurrent_uses_commit_in_batches_and_each_is_counted(
    metered: tuple[Marketplace, Unit, list[Subscription]],
) -> None:
    mp, unit, (big, _) = metered
    meter = UsageMeter(mp.app)
    try:
        futures: list[Future[Metered]] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            for _ in range(n):
                future = meter.submit(use(mp, unit, big))
                with lock:
                    futures.append(future)

        threads = [threading.Thread(target=client, args=(25,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcomes = [f.result(timeout=60) for f in futures]
    finally:
        meter.close()
    assert len(outcomes) == 200 and all(o.counted for o in outcomes)
    assert meter.records == 200 and meter.batches < 200  # group commit happened
    stored = ledger(mp, big)
    assert stored.queries_used == 200 and stored.rows_used == 600
    assert {o.use_id for o in outcomes} == set(stored.uses)


def test_art23_a_quota_is_never_overrun_by_a_batch(metered: tuple[Marketplace, Unit, list[Subscription]]) -> None:
    mp, unit, (_, small) = metered
    meter = UsageMeter(mp.app)
    try:
        futures = [meter.submit(use(mp, unit, small)) for _ in range(25)]
        counted, refused = 0, 0
        for future in futures:
            try:
                future.result(timeout=60)
                counted += 1
            except QuotaExceeded:
                refused += 1
    finally:
        meter.close()
    stored = ledger(mp, small)
    assert (counted, refused) == (10, 15)
    assert stored.queries_used == 10 and stored.refusals == 15


def test_art8_a_refusal_decided_before_metering_is_recorded_and_raised(
    metered: tuple[Marketplace, Unit, list[Subscription]],
) -> None:
    mp, unit, (big, _) = metered
    meter = UsageMeter(mp.app)
    error = PermissionDenied("not for you")
    try:
        with pytest.raises(PermissionDenied) as info:
            meter.record(use(mp, unit, big, refusal=error, recorded_as="unauthenticated"))
    finally:
        meter.close()
    assert info.value is error
    stored = ledger(mp, big)
    assert stored.refusals == 1 and stored.queries_used == 0
    refused = [e for e in mp.app.events.get(stored.id) if type(e).__name__ == "UseRefused"]
    assert refused[0].reason == "permission_denied" and refused[0].user_id == "unauthenticated"  # type: ignore[attr-defined]


def test_art23_another_writer_on_the_same_ledger_is_not_overwritten(
    metered: tuple[Marketplace, Unit, list[Subscription]],
) -> None:
    """The meter caches ledgers it wrote; a write by another process makes its save conflict, so it reloads."""
    mp, unit, (big, _) = metered
    meter = UsageMeter(mp.app)
    try:
        meter.record(use(mp, unit, big))
        mp.usage.record_use(unit.analyst, subscription_id=big.id, kind="query", product_version="1",
                            query={"dimensions": ["district"]}, fields=["district"], rows_out=0, budget_spent=0.0)
        outcome = meter.record(use(mp, unit, big))
    finally:
        meter.close()
    assert outcome.counted
    assert ledger(mp, big).queries_used == 3


def test_art8_when_the_store_fails_no_one_gets_a_result(
    metered: tuple[Marketplace, Unit, list[Subscription]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    mp, unit, (big, _) = metered
    meter = UsageMeter(mp.app)

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("database is down")

    try:
        monkeypatch.setattr(mp.app.events, "put", broken)
        futures = [meter.submit(use(mp, unit, big)) for _ in range(5)]
        for future in futures:
            with pytest.raises(RuntimeError, match="database is down"):
                future.result(timeout=30)
        monkeypatch.undo()
        assert meter.record(use(mp, unit, big)).counted  # recovers: nothing half-applied stays cached
    finally:
        meter.close()
    assert ledger(mp, big).queries_used == 1


def test_art23_a_retried_use_is_counted_once(metered: tuple[Marketplace, Unit, list[Subscription]]) -> None:
    mp, unit, (big, _) = metered
    meter = UsageMeter(mp.app)
    try:
        once = use(mp, unit, big)
        assert meter.record(once).counted
        assert not meter.record(once).counted
    finally:
        meter.close()
    assert ledger(mp, big).queries_used == 1


def test_art8_a_malformed_use_is_refused_without_a_record(
    metered: tuple[Marketplace, Unit, list[Subscription]],
) -> None:
    mp, unit, (big, _) = metered
    meter = UsageMeter(mp.app)
    before = mp.app.recorder.max_notification_id()
    try:
        with pytest.raises(DomainError, match="rows_out"):
            meter.record(use(mp, unit, big, rows_out=-1))
    finally:
        meter.close()
    # Opening the ledger is not a use either: nothing at all was stored.
    assert mp.app.recorder.max_notification_id() == before
    with pytest.raises(RuntimeError):
        meter.submit(use(mp, unit, big))


def test_art18_long_ledgers_are_snapshotted_from_memory_and_reload_exactly(
    metered: tuple[Marketplace, Unit, list[Subscription]],
) -> None:
    mp, unit, (big, _) = metered
    meter = UsageMeter(mp.app)
    try:
        for _ in range(6):  # six batches of 20: versions cross 50 and 100
            futures = [meter.submit(use(mp, unit, big)) for _ in range(20)]
            for future in futures:
                future.result(timeout=60)
    finally:
        meter.close()
    ledger_id = UsageLedger.create_id(big.id, period_of(mp.usage.clock()))
    assert mp.app.snapshots is not None
    snapshots = list(mp.app.snapshots.get(ledger_id))
    assert snapshots and max(s.originator_version for s in snapshots) >= 100
    reloaded = mp.usage.get(UsageLedger, ledger_id)
    assert reloaded.queries_used == 120 and reloaded.rows_used == 360 and len(reloaded.uses) == 120
    assert reloaded.version == 121  # opened + 120 uses
