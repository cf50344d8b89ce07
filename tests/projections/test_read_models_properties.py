"""The read models' mappings against the aggregates they mirror, with no store in between.

Real domain commands produce real events; the store's own mapper encodes them exactly as
the event store would; the projections map them to row operations that a private
in-memory database executes. Hypothesis state machines then drive random command
sequences and check after every step that what the read model (and ``views``) derives
equals what the aggregate says: the product status a new version changes without saying
so (art. 22), quality issue deadlines and overdue flags (art. 17), remaining quota
(art. 23) and charges (art. 24).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import polars as pl
import pytest
from eventsourcing.domain import Aggregate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.catalog import FieldSpec, FieldType, Grade, Openness
from domain.errors import DomainError
from domain.identity import Actor, Role
from domain.licensing import BUSINESS_TZ, Entitlements, SubscriptionStatus, SubscriptionTerms, business_date
from domain.pricing import PricePlan, PurposeClass
from domain.products import DataProduct, ProductStatus, SourceFacts
from domain.quality import IssueStatus, QualityIssue
from domain.usage import UsageLedger, period_of
from marketplace.store import MarketplaceApplication
from projections import views
from projections.base import Codec, Projection, Recorded, Table
from projections.catalog import PRODUCTS, CatalogProjection, product_status
from projections.db import OpWriter, frame_from_rows, memory
from projections.feedback import FeedbackProjection
from projections.pricing import plan_json, tiers_text
from projections.queues import QueuesProjection
from projections.usage import LEDGERS, UsageProjection, business_day

PM = Actor("pm-1", Role.PRODUCT_MANAGER)
OTHER_PM = Actor("pm-2", Role.PRODUCT_MANAGER)
REVIEWER = Actor("reviewer-1", Role.COMPLIANCE_REVIEWER)
ADMIN = Actor("admin-1", Role.OPERATOR_ADMIN)
PROVIDER = uuid5(NAMESPACE_URL, "shuyun/provider/test")
CLERK = Actor("clerk-1", Role.PROVIDER_STAFF, provider_id=PROVIDER)
UNIT = uuid5(NAMESPACE_URL, "shuyun/unit/test")
ANALYST = Actor("analyst-1", Role.UNIT_ANALYST, unit_id=UNIT)
T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


class Harness:
    """Domain events -> the store's mapper -> ``Recorded`` -> projections -> an in-memory database."""

    def __init__(self, projections: Sequence[Projection]) -> None:
        self.app = MarketplaceApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.codec = Codec(self.app.mapper)
        self.projections = list(projections)
        self.tables = {t.name: t for p in self.projections for t in p.tables}
        self.db = memory()
        self.writer = OpWriter(self.db, self.tables)
        with self.db.transaction() as cur:
            self.db.reset_tables(cur, list(self.tables.values()), drop=True)
        self.position = 0

    def feed(self, *aggregates: Aggregate) -> None:
        """Map and write the aggregates' new events (invariants call it first: their order is not fixed)."""
        ops: list[Any] = []
        for aggregate in aggregates:
            for event in aggregate.collect_events():
                stored = self.app.mapper.to_stored_event(event)
                self.position += 1
                recorded = Recorded(self.position, stored.originator_id, stored.originator_version, stored.topic,
                                    stored.state, self.codec)
                for projection in self.projections:
                    if projection.handles(stored.topic):
                        ops.extend(projection.apply(recorded))
        with self.db.transaction() as cur:
            self.writer.execute(cur, ops)

    def frame(self, table: Table) -> pl.DataFrame:
        names, rows = self.db.query(f"SELECT * FROM {table.name} ORDER BY {', '.join(table.key)}")
        return frame_from_rows(names, rows, table.columns)

    def close(self) -> None:
        self.db.close()
        self.app.close()


def digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def source() -> SourceFacts:
    return SourceFacts(
        resource_id=uuid5(NAMESPACE_URL, "shuyun/resource/test"), provider_id=PROVIDER, grade=Grade.GENERAL_2,
        openness=Openness.UNCONDITIONAL, personal_fields=(), consent_granted=True, approved=True,
    )


def attempt(command: Any, **kwargs: Any) -> bool:
    try:
        command(**kwargs)
    except DomainError:
        return False
    return True


# -- products: the status a new version changes without saying so (art. 22) ----------------------------


class ProductLifecycle(RuleBasedStateMachine):
    """Any sequence of product commands: the read model's derived status is the aggregate's."""

    def __init__(self) -> None:
        super().__init__()
        self.harness = Harness([CatalogProjection(), QueuesProjection()])
        self.product = DataProduct.create(
            name="Bus ridership", description="hourly boardings", category="transport", sources=[source()],
            fields=[FieldSpec("district", FieldType.CATEGORY, "district")], delivery_modes=["sandbox_aggregate"],
            by=PM,
        )
        self.versions = 0
        self.harness.feed(self.product)

    def teardown(self) -> None:
        self.harness.close()

    @rule()
    def register_version(self) -> None:
        self.versions += 1
        attempt(self.product.register_version, content_hash=digest(self.versions), row_count=10 * self.versions,
                at=T0, by=PM)

    @rule(submitter=st.sampled_from([PM, OTHER_PM]))
    def submit(self, submitter: Actor) -> None:
        attempt(self.product.submit_for_review, sources=[source()], by=submitter)

    @rule(approved=st.booleans(), reviewer=st.sampled_from([REVIEWER, REVIEWER, REVIEWER, PM]))
    def review(self, approved: bool, reviewer: Actor) -> None:
        attempt(self.product.review, approved=approved, reason="checked the outputs", by=reviewer)

    @rule()
    def price(self) -> None:
        attempt(self.product.set_price_cap, cap="100.00", reason="authority", by=ADMIN)
        attempt(self.product.set_plan, plan={"plan_id": "basic", "name": "Basic", "billing_unit": "per_call",
                                             "tiers": [{"up_to": None, "unit_price": "1.00"}]},
                reason="trial", by=PM)

    @rule()
    def list_product(self) -> None:
        attempt(self.product.list_on_storefront, by=PM)

    @rule()
    def unlist(self) -> None:
        attempt(self.product.unlist, reason="paused", by=PM)

    @invariant()
    def art22_derived_status_is_the_aggregates(self) -> None:
        self.harness.feed(self.product)
        row = self.harness.frame(PRODUCTS).row(0, named=True)
        assert product_status(row["status_event"], row["status_event_id"], row["version_event_id"]) == \
            self.product.status.value
        assert row["version_count"] == len(self.product.versions)
        detail = views.product_detail(self.harness.db, self.product.id).row(0, named=True)
        assert (detail["status"], detail["listed"]) == (self.product.status.value, self.product.is_listed)

    @invariant()
    def art15_compliance_queue_holds_the_product_exactly_while_in_review_never_for_its_builder(self) -> None:
        self.harness.feed(self.product)
        listed = views.queue(self.harness.db, "compliance_reviewer")
        assert (listed["item_id"] == str(self.product.id)).any() == (self.product.status.value == "in_review")
        assert views.queue(self.harness.db, "compliance_reviewer", user_id=PM.user_id).is_empty()


TestProductLifecycle = ProductLifecycle.TestCase
TestProductLifecycle.settings = settings(max_examples=60, stateful_step_count=16, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])


def test_art22_a_new_version_of_a_listed_product_sends_it_back_to_review_in_catalog_and_queue() -> None:
    machine = ProductLifecycle()
    try:
        product = machine.product
        product.register_version(content_hash=digest(1), row_count=10, at=T0, by=PM)
        product.submit_for_review(sources=[source()], by=PM)
        product.review(approved=True, reason="aggregates only", by=REVIEWER)
        machine.price()
        product.list_on_storefront(by=PM)
        machine.harness.feed(product)
        assert views.catalog(machine.harness.db, listed=True).height == 1
        assert views.queue(machine.harness.db, "compliance_reviewer").is_empty()

        product.register_version(content_hash=digest(2), row_count=20, at=T0, by=OTHER_PM)
        machine.harness.feed(product)

        assert product.status is ProductStatus.IN_REVIEW
        assert views.catalog(machine.harness.db)["status"].to_list() == ["in_review"]
        assert views.catalog(machine.harness.db, listed=True).is_empty()
        waiting = views.queue(machine.harness.db, "compliance_reviewer", user_id=REVIEWER.user_id)
        assert waiting["item_id"].to_list() == [str(product.id)]
        assert waiting["note"].to_list() == ["new version"]
        assert views.queue(machine.harness.db, "compliance_reviewer", user_id=PM.user_id).is_empty()
    finally:
        machine.teardown()


# -- quality issues: deadlines and overdue flags (art. 11, 17) --------------------------------------------


class IssueWorkflow(RuleBasedStateMachine):
    """Any sequence of the objection workflow: status, deadline, overdue and queues follow the aggregate."""

    def __init__(self) -> None:
        super().__init__()
        self.harness = Harness([FeedbackProjection(), QueuesProjection()])
        self.now = T0
        self.issue = QualityIssue.report(
            resource_id=uuid5(NAMESPACE_URL, "shuyun/resource/test"), provider_id=PROVIDER, dimension="accuracy",
            description="values off by a factor of ten", evidence="compare with last month", by=ANALYST, at=self.now,
        )
        self.harness.feed(self.issue)

    def teardown(self) -> None:
        self.harness.close()

    @rule(hours=st.integers(1, 24 * 20))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule(days=st.integers(1, 15), verifier=st.sampled_from([PM, REVIEWER]))
    def verify(self, days: int, verifier: Actor) -> None:
        attempt(self.issue.verify, deadline_days=days, by=verifier, at=self.now)

    @rule()
    def reject(self) -> None:
        attempt(self.issue.reject, reason="seasonal effect", by=REVIEWER, at=self.now)

    @rule(days=st.integers(1, 10))
    def extend(self, days: int) -> None:
        attempt(self.issue.extend_deadline, days=days, reason="needs a new survey", by=ADMIN, at=self.now)

    @rule()
    def rectify(self) -> None:
        attempt(self.issue.rectify, note="republished", by=CLERK, at=self.now)

    @rule()
    def refuse(self) -> None:
        attempt(self.issue.refuse, reason="the data is right", by=CLERK, at=self.now)

    @rule()
    def close(self) -> None:
        attempt(self.issue.close, note="checked", by=PM, at=self.now)

    @invariant()
    def art17_status_deadline_and_overdue_follow_the_aggregate(self) -> None:
        self.harness.feed(self.issue)
        issues = views.quality_issues(self.harness.db, at=self.now)
        row = issues.row(0, named=True)
        assert row["status"] == self.issue.status.value
        assert row["deadline"] == self.issue.deadline
        assert row["overdue"] == self.issue.is_overdue(self.now)
        assert row["open"] == self.issue.is_open
        assert row["rectified_late"] == (self.issue.rectified_late if self.issue.rectified_at else None)

    @invariant()
    def art17_each_step_is_in_the_queue_of_whoever_acts_next(self) -> None:
        self.harness.feed(self.issue)
        status = self.issue.status
        verifying = views.queue(self.harness.db, "product_manager", at=self.now)
        rectifying = views.queue(self.harness.db, "provider_staff", provider_id=PROVIDER, at=self.now)
        assert set(verifying["queue"]) == (
            {"quality_verification"} if status is IssueStatus.REPORTED
            else {"quality_closing"} if status is IssueStatus.RECTIFIED else set()
        )
        assert rectifying.height == (1 if status is IssueStatus.VERIFIED else 0)
        if status is IssueStatus.VERIFIED:
            assert rectifying["deadline"][0] == self.issue.deadline
            assert rectifying["overdue"][0] == (self.now > self.issue.deadline)
        # Art. 15-16: whoever reported it never sees it to verify or close.
        assert views.queue(self.harness.db, "unit_analyst", user_id=ANALYST.user_id).is_empty()


TestIssueWorkflow = IssueWorkflow.TestCase
TestIssueWorkflow.settings = settings(max_examples=40, stateful_step_count=12, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])


# -- usage: remaining quota and budget (art. 23) ------------------------------------------------------------


SUBSCRIPTION = uuid5(NAMESPACE_URL, "shuyun/subscription/test")


class Metering(RuleBasedStateMachine):
    """Any sequence of uses, refusals and entitlement changes: remaining is what the ledger says."""

    def __init__(self) -> None:
        super().__init__()
        self.harness = Harness([UsageProjection()])
        self.entitlements = Entitlements(queries_per_period=6, rows_per_period=500, privacy_budget=0.7)
        self.period = period_of(T0)
        self.ledger = UsageLedger.open(subscription_id=SUBSCRIPTION, period=self.period, unit_id=UNIT,
                                       product_id=source().resource_id, entitlements=self.entitlements, by=ANALYST)
        self.terms = SubscriptionTerms(SUBSCRIPTION, SubscriptionStatus.ACTIVE, date(2025, 1, 1), date(2025, 12, 31),
                                       ("district",))
        self.uses = 0
        self.harness.feed(self.ledger)

    def teardown(self) -> None:
        self.harness.close()

    @rule(rows=st.integers(0, 300), budget=st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.3]),
          minutes=st.integers(0, 60 * 24 * 3))
    def use(self, rows: int, budget: float, minutes: int) -> None:
        self.uses += 1
        at = min(T0 + timedelta(minutes=minutes), datetime(2025, 3, 31, 15, 59, tzinfo=UTC))
        try:
            self.ledger.record_use(use_id=f"u{self.uses}", user_id=ANALYST.user_id, kind="query", product_version=1,
                                   query={"dimensions": ["district"]}, fields=["district"], rows_out=rows,
                                   budget_spent=budget, at=at, terms=self.terms, by=ANALYST)
        except DomainError as error:
            self.ledger.record_refusal(use_id=f"u{self.uses}", user_id=ANALYST.user_id, query={}, reason=error.code,
                                       at=at, by=ANALYST)

    @rule(queries=st.integers(0, 10), rows=st.integers(0, 1000), budget=st.sampled_from([0.0, 0.5, 0.7, 1.1]))
    def change_entitlements(self, queries: int, rows: int, budget: float) -> None:
        self.entitlements = Entitlements(queries_per_period=queries, rows_per_period=rows, privacy_budget=budget)
        attempt(self.ledger.adopt_entitlements, entitlements=self.entitlements, by=ADMIN)

    @invariant()
    def art23_remaining_is_the_ledgers_remaining_under_the_subscriptions_entitlements(self) -> None:
        self.harness.feed(self.ledger)
        ledgers = self.harness.frame(LEDGERS)
        subscription = pl.DataFrame({
            "subscription_id": [str(SUBSCRIPTION)],
            "queries_per_period": [self.entitlements.queries_per_period],
            "rows_per_period": [self.entitlements.rows_per_period],
            "privacy_budget": [self.entitlements.privacy_budget],
        })
        row = views._remaining(subscription, ledgers, self.period).row(0, named=True)
        expected = self.ledger.remaining(self.entitlements)
        assert (row["queries_remaining"], row["rows_remaining"], row["budget_remaining"], row["reset_on"]) == (
            expected.queries, expected.rows, expected.budget, expected.reset_on
        )
        daily = views.usage_daily(self.harness.db)
        assert int(daily["queries"].sum()) == self.ledger.queries_used
        assert int(daily["refusals"].sum()) == self.ledger.refusals


TestMetering = Metering.TestCase
TestMetering.settings = settings(max_examples=40, stateful_step_count=15, deadline=None,
                                 suppress_health_check=[HealthCheck.too_slow])


# -- calculations -------------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()))
def test_art23_business_day_is_the_baotou_calendar_day_of_the_instant(moment: datetime) -> None:
    assert business_day(moment.isoformat()) == business_date(moment).isoformat()
    assert business_day(moment.isoformat())[:7] == period_of(moment)


@settings(max_examples=200)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_business_day_takes_a_naive_instant_as_utc(moment: datetime) -> None:
    assert business_day(moment.isoformat()) == moment.replace(tzinfo=UTC).astimezone(BUSINESS_TZ).date().isoformat()


prices = st.decimals(min_value=Decimal("0.00"), max_value=Decimal("50.00"), places=2)


@st.composite
def plans(draw: st.DrawFn) -> PricePlan:
    bounds = sorted(draw(st.sets(st.integers(1, 400), max_size=4)))
    tiers = [{"up_to": b, "unit_price": draw(prices)} for b in bounds] + [{"up_to": None, "unit_price": draw(prices)}]
    return PricePlan.parse({"plan_id": "p", "name": "P", "billing_unit": "per_call", "tiers": tiers})


@settings(max_examples=200)
@given(plan=plans(), queries=st.integers(0, 2000), purpose=st.sampled_from(list(PurposeClass)))
def test_art24_a_per_call_charge_is_the_products_quote(plan: PricePlan, queries: int, purpose: PurposeClass) -> None:
    product = DataProduct.create(
        name="Quoted", description="d", category="c", sources=[source()],
        fields=[FieldSpec("district", FieldType.CATEGORY, "district")], delivery_modes=["sandbox_aggregate"], by=PM,
    )
    product.set_price_cap(cap="100.00", reason="cap", by=ADMIN)
    product.set_plan(plan=plan, reason="offer", by=PM)
    row = {"plan": _plan_json(plan), "purpose_class": purpose.value, "queries_used": queries,
           "first_period": True}
    assert views._charges([row]) == [product.quote("p", purpose, queries)]
    if purpose.is_free:
        assert views._charges([row]) == [Decimal("0.00")]


def _plan_json(plan: PricePlan) -> str:
    return plan_json({
        "plan_id": plan.plan_id, "name": plan.name, "billing_unit": plan.billing_unit.value,
        "tiers": [{"up_to": t.up_to, "unit_price": str(t.unit_price)} for t in plan.tiers],
        "period_months": plan.period_months, "stage": plan.stage.value,
    })


@settings(max_examples=100)
@given(plan=plans())
def test_art24_the_published_schedule_names_every_band_once_in_order(plan: PricePlan) -> None:
    text = tiers_text({"tiers": [{"up_to": t.up_to, "unit_price": str(t.unit_price)} for t in plan.tiers]})
    bands = text.split("; ")
    assert len(bands) == len(plan.tiers)
    assert bands[0].startswith("1-") or bands[0].startswith("1+")
    assert bands[-1].split(" @ ")[0].endswith("+")
    assert [b.split(" @ ")[1] for b in bands] == [str(t.unit_price) for t in plan.tiers]


@pytest.mark.parametrize(
    ("status", "status_id", "version_id", "expected"),
    [
        ("draft", 1, 5, "draft"),
        ("rejected", 3, 5, "rejected"),
        ("approved", 3, 5, "in_review"),
        ("listed", 3, 5, "in_review"),
        ("listed", 6, 5, "listed"),
        ("in_review", 6, 5, "in_review"),
        (None, None, None, "draft"),
    ],
)
def test_art22_a_version_after_approval_sends_the_product_back_to_review(
    status: str | None, status_id: int | None, version_id: int | None, expected: str
) -> None:
    assert product_status(status, status_id, version_id) == expected


def test_views_read_as_empty_before_the_projections_ran() -> None:
    db = memory()
    try:
        empty: Iterable[pl.DataFrame] = (
            views.catalog(db), views.units(db), views.unit_subscriptions(db), views.usage_daily(db),
            views.pricing_review(db), views.feedback_review(db), views.contributions(db, period="2025-Q1"),
            views.queue(db, "operator_admin"), views.audit(db), views.quality_issues(db), views.revenue(db),
            views.audit_topics(db), views.audit_actors(db),
        )
        for frame in empty:
            assert frame.is_empty()
        assert views.audit_topics(db).schema == {"topic": pl.String, "aggregate_type": pl.String,
                                                 "event_name": pl.String, "events": pl.Int64}
        assert views.audit_actors(db).schema == {"user_id": pl.String, "events": pl.Int64}
        assert "lowest_price" in views.catalog(db).columns
        assert "queries_remaining" in views.unit_subscriptions(db).columns
        assert views.allowed_revenue(db, 2025)["revenue"][0] == 0.0
    finally:
        db.close()


def test_views_refuse_what_is_not_a_database() -> None:
    from projections.base import ProjectionError

    with pytest.raises(ProjectionError, match="Config, Database or Runner"):
        views.catalog("var/shuyun.sqlite")  # type: ignore[arg-type]


def test_every_public_view_is_listed() -> None:
    assert {"catalog", "product_detail", "unit_subscriptions", "usage_daily", "pricing_review", "price_history",
            "feedback_review", "contributions", "queue", "audit", "audit_topics", "audit_actors"} <= set(views.VIEWS)
    assert all(callable(f) for f in views.VIEWS.values())

