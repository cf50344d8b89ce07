"""Rules of usage metering: scope, term, quotas, privacy budget, refusals (art. 8, 23, 26)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.errors import DomainError, InvalidInput, InvalidState
from domain.identity import SYSTEM, Actor, Role
from domain.licensing import Entitlements, OutsideTerm, SubscriptionNotActive, SubscriptionStatus, SubscriptionTerms
from domain.usage import (
    USE_REFUSALS,
    OutOfScope,
    PrivacyBudgetExhausted,
    QuotaExceeded,
    Remaining,
    UsageKind,
    UsageLedger,
    WrongPeriod,
    canonical_query,
    next_period_start,
    parse_period,
    period_of,
    period_start,
)

SUB = UUID("00000000-0000-4000-8000-0000000000c1")
UNIT = UUID("00000000-0000-4000-8000-000000000001")
PRODUCT = UUID("00000000-0000-4000-8000-0000000000a1")
ANALYST = Actor("ana", Role.UNIT_ANALYST, unit_id=UNIT)
ENT = Entitlements(queries_per_period=3, rows_per_period=100, privacy_budget=1.0)
TERMS = SubscriptionTerms(SUB, SubscriptionStatus.ACTIVE, date(2025, 1, 1), date(2025, 12, 31), ("district", "trips"))
MAY = datetime(2025, 5, 10, 4, tzinfo=UTC)  # noon in Baotou


def ledger(entitlements: Entitlements = ENT, period: str = "2025-05") -> UsageLedger:
    return UsageLedger.open(
        subscription_id=SUB, period=period, unit_id=UNIT, product_id=PRODUCT, entitlements=entitlements, by=SYSTEM
    )


def use(book: UsageLedger, use_id: str = "u1", **overrides: Any) -> bool:
    args: dict[str, Any] = dict(
        use_id=use_id, user_id="ana", kind="query", product_version=3,
        query={"select": ["district"], "aggregate": {"trips": "sum"}}, fields=("district", "trips"),
        rows_out=10, budget_spent=0.1, at=MAY, terms=TERMS, by=ANALYST,
    )
    args.update(overrides)
    return book.record_use(**args)


# -- periods (properties) --------------------------------------------------------------
days = st.dates(min_value=date(1, 1, 1), max_value=date(9998, 12, 31))


@given(days)
def test_period_of_a_day_contains_it_and_resets_on_the_first_of_the_next_month(day: date) -> None:
    period = period_of(day)
    assert parse_period(period) == (day.year, day.month)
    assert period_start(period) <= day < next_period_start(period)
    reset = next_period_start(period)
    assert reset.day == 1 and (reset - timedelta(days=1)).month == day.month


@given(st.integers(1, 9998), st.integers(1, 12))
def test_consecutive_periods_tile_the_calendar(year: int, month: int) -> None:
    period = f"{year:04d}-{month:02d}"
    following = period_of(next_period_start(period))
    assert period_start(following) == next_period_start(period)
    assert following > period  # "YYYY-MM" sorts in time order


@given(st.text(max_size=10))
def test_parse_period_never_crashes_on_junk(text: str) -> None:
    try:
        year, month = parse_period(text)
    except InvalidInput as error:
        assert error.field == "period"
    else:
        assert text == f"{year:04d}-{month:02d}" and 1 <= month <= 12


@pytest.mark.parametrize("bad", ["2025-13", "2025-00", "2025-5", "25-05", "9999-01", "0000-05", 202505])
def test_parse_period_refuses_malformed(bad: object) -> None:
    with pytest.raises(InvalidInput):
        parse_period(bad)


def test_period_of_an_instant_is_taken_in_baotou_time() -> None:
    assert period_of(datetime(2025, 1, 31, 15, 59, tzinfo=UTC)) == "2025-01"
    assert period_of(datetime(2025, 1, 31, 16, 0, tzinfo=UTC)) == "2025-02"


def test_ledger_id_is_one_per_subscription_and_period() -> None:
    assert ledger().id == UsageLedger.create_id(SUB, "2025-05")
    assert UsageLedger.create_id(SUB, "2025-05") != UsageLedger.create_id(SUB, "2025-06")
    with pytest.raises(InvalidInput):
        ledger(period="May")


# -- recording uses -----------------------------------------------------------------------
def test_art8_a_use_is_counted_with_rows_and_budget() -> None:
    book = ledger()
    assert use(book) is True
    assert (book.queries_used, book.rows_used, book.budget_used) == (1, 10, 0.1)
    assert book.remaining() == Remaining("2025-05", 2, 90, 0.9, date(2025, 6, 1))


def test_art8_a_retried_use_is_not_counted_twice() -> None:
    book = ledger()
    use(book, "u1")
    version = book.version
    assert use(book, "u1") is False
    assert book.version == version and book.queries_used == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("use_id", ""),
        ("user_id", " "),
        ("kind", "scrape"),
        ("product_version", None),
        ("query", "SELECT *"),
        ("query", {"x": float("nan")}),
        ("query", {1: "x"}),
        ("fields", "district"),
        ("fields[0]", [""]),
        ("rows_out", -1),
        ("rows_out", 1.5),
        ("budget_spent", -0.1),
        ("budget_spent", float("inf")),
        ("at", date(2025, 5, 10)),
    ],
)
def test_art8_malformed_use_names_the_field_and_changes_nothing(field: str, value: object) -> None:
    book = ledger()
    overrides: dict[str, Any] = {field.split("[")[0]: value}
    with pytest.raises(InvalidInput) as error:
        use(book, **overrides)
    assert error.value.field == field
    assert book.version == 1 and book.queries_used == 0


def test_a_query_is_stored_as_canonical_json_text() -> None:
    assert canonical_query({"b": 1, "a": [1, "二"]}) == '{"a":[1,"二"],"b":1}'
    # a user's JSON that looks like the store's own type tag stays plain text
    assert canonical_query({"_type_": "uuid_hex", "_data_": "x"}) == '{"_data_":"x","_type_":"uuid_hex"}'


def test_art23_use_of_a_field_outside_the_scope_is_refused_naming_it() -> None:
    book = ledger()
    with pytest.raises(OutOfScope) as error:
        use(book, fields=("district", "id_number", "name"))
    assert "id_number, name" in error.value.message
    assert error.value.ids["fields"] == "id_number,name"
    assert book.queries_used == 0


@pytest.mark.parametrize("status", [s for s in SubscriptionStatus if s is not SubscriptionStatus.ACTIVE])
def test_art23_use_needs_an_active_subscription(status: SubscriptionStatus) -> None:
    with pytest.raises(SubscriptionNotActive):
        use(ledger(), terms=TERMS._replace(status=status))


def test_art23_use_outside_the_term_is_refused() -> None:
    terms = TERMS._replace(term_end=date(2025, 5, 9))
    with pytest.raises(OutsideTerm):
        use(ledger(), terms=terms)


def test_art23_use_is_checked_against_its_own_subscription() -> None:
    with pytest.raises(InvalidInput) as error:
        use(ledger(), terms=TERMS._replace(subscription_id=UUID(int=1)))
    assert error.value.field == "terms"


def test_art23_use_in_another_month_belongs_to_another_ledger() -> None:
    with pytest.raises(WrongPeriod):
        use(ledger(), at=datetime(2025, 5, 31, 16, 0, tzinfo=UTC))  # 1 June in Baotou


def test_art23_query_quota_is_enforced_and_says_when_it_resets() -> None:
    book = ledger()
    for i in range(3):
        use(book, f"u{i}", rows_out=1, budget_spent=0)
    with pytest.raises(QuotaExceeded) as error:
        use(book, "u3", rows_out=1, budget_spent=0)
    assert error.value.quota == "queries"
    assert error.value.reset_on == date(2025, 6, 1)
    assert error.value.ids["reset_on"] == "2025-06-01"
    assert book.queries_used == 3


def test_art23_row_quota_is_enforced() -> None:
    book = ledger()
    use(book, "u1", rows_out=60)
    with pytest.raises(QuotaExceeded) as error:
        use(book, "u2", rows_out=41)
    assert error.value.quota == "rows"
    use(book, "u3", rows_out=40)
    assert book.rows_used == 100 and book.rows_remaining == 0


def test_art8_privacy_budget_is_enforced_without_float_noise() -> None:
    book = ledger(Entitlements(10, 100, 0.3))
    use(book, "u1", budget_spent=0.1)
    use(book, "u2", budget_spent=0.2)  # 0.1 + 0.2 is 0.3 here, not 0.30000000000000004
    assert book.budget_remaining == 0.0
    with pytest.raises(PrivacyBudgetExhausted) as error:
        use(book, "u3", budget_spent=0.001)
    assert error.value.ids["reset_on"] == "2025-06-01"


def test_art8_a_refusal_is_recorded_but_not_counted() -> None:
    book = ledger()
    book.record_refusal(use_id="u9", user_id="ana", query={"q": 1}, reason="quota_exceeded", at=MAY, by=ANALYST)
    assert book.refusals == 1 and book.queries_used == 0 and book.version == 2
    # a refused use may be tried again later and then counts once
    assert use(book, "u9") is True
    with pytest.raises(InvalidState):
        book.record_refusal(use_id="u9", user_id="ana", query={}, reason="x", at=MAY, by=ANALYST)
    with pytest.raises(InvalidInput) as error:
        book.record_refusal(use_id="u10", user_id="ana", query={}, reason="", at=MAY, by=ANALYST)
    assert error.value.field == "reason"


def test_usage_refusals_are_exactly_the_rule_refusals() -> None:
    assert {c.code for c in USE_REFUSALS} == {
        "subscription_not_active", "outside_term", "out_of_scope", "quota_exceeded", "privacy_budget_exhausted",
    }


def test_art23_ledger_follows_changed_entitlements() -> None:
    book = ledger()
    for i in range(3):
        use(book, f"u{i}", budget_spent=0)
    book.adopt_entitlements(entitlements=Entitlements(5, 100, 1.0), by=SYSTEM)
    assert use(book, "u3", budget_spent=0) is True
    with pytest.raises(InvalidInput):
        book.adopt_entitlements(entitlements=Entitlements(5, 100, 1.0), by=SYSTEM)


def test_usage_kinds_are_all_metered_and_only_calls_count_as_queries() -> None:
    book = ledger(Entitlements(10, 100, 1.0))
    for i, kind in enumerate(UsageKind):
        use(book, f"u{i}", kind=kind, rows_out=0, budget_spent=0)
    assert book.queries_used == len([k for k in UsageKind if k.is_call]) == len(UsageKind) - 1
    assert sorted(book.uses.values()) == sorted(k.value for k in UsageKind)


# -- state machine: quota is never exceeded, refusals never counted ---------------------
class UsageLedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = ledger(Entitlements(queries_per_period=8, rows_per_period=50, privacy_budget=0.5))
        self.counted: dict[str, tuple[int, float]] = {}
        self.refused = 0

    @rule(
        use_id=st.sampled_from([f"u{i}" for i in range(12)]),
        rows=st.integers(0, 30),
        budget=st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.3]),
        field=st.sampled_from(["district", "trips", "name"]),
        status=st.sampled_from([SubscriptionStatus.ACTIVE] * 4 + [SubscriptionStatus.SUSPENDED]),
    )
    def record(self, use_id: str, rows: int, budget: float, field: str, status: SubscriptionStatus) -> None:
        before = (self.book.queries_used, self.book.rows_used, self.book.budget_used, self.book.version)
        try:
            recorded = use(
                self.book, use_id, rows_out=rows, budget_spent=budget, fields=(field,),
                terms=TERMS._replace(status=status),
            )
        except DomainError as error:
            assert isinstance(error, USE_REFUSALS)
            assert (self.book.queries_used, self.book.rows_used, self.book.budget_used, self.book.version) == before
            self.book.record_refusal(use_id=use_id, user_id="ana", query={}, reason=error.code, at=MAY, by=ANALYST)
            self.refused += 1
            return
        if recorded:
            assert use_id not in self.counted
            self.counted[use_id] = (rows, budget)
        else:
            assert use_id in self.counted

    @invariant()
    def used_never_exceeds_allowed(self) -> None:
        b, e = self.book, self.book.entitlements
        assert b.queries_used <= e.queries_per_period
        assert b.rows_used <= e.rows_per_period
        assert b.budget_used <= e.privacy_budget

    @invariant()
    def totals_are_exactly_the_counted_uses(self) -> None:
        assert self.book.queries_used == len(self.counted)
        assert self.book.rows_used == sum(r for r, _ in self.counted.values())
        assert self.book.budget_used == pytest.approx(sum(b for _, b in self.counted.values()))
        assert self.book.refusals == self.refused
        assert set(self.book.uses) == set(self.counted)

    @invariant()
    def remaining_plus_used_is_allowed(self) -> None:
        r, b, e = self.book.remaining(), self.book, self.book.entitlements
        assert r.queries + b.queries_used == e.queries_per_period
        assert r.rows + b.rows_used == e.rows_per_period


TestUsageLedgerMachine = UsageLedgerMachine.TestCase


def test_art26_workspace_time_is_recorded_but_is_not_a_query_against_the_quota() -> None:
    book = ledger()
    for i in range(3):
        use(book, f"q{i}", rows_out=1, budget_spent=0)
    assert use(book, "ws1", kind="workspace_session", fields=(), rows_out=0, budget_spent=0)
    assert book.queries_used == 3
    assert book.uses["ws1"] == "workspace_session"
    with pytest.raises(QuotaExceeded):
        use(book, "q3", rows_out=1, budget_spent=0)
