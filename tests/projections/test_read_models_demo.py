"""The read models of the demo marketplace against the aggregates, on SQLite and PostgreSQL.

The demo is seeded by another process (``shuyun demo``), so everything here is also a
proof that a runner in this process picks up events another process wrote. Each read
model is then checked against what the services did, read back from the aggregates
themselves: statuses and counts, remaining quota against ``UsageService.remaining``,
revenue against ``DataProduct.quote``, overdue flags against ``QualityIssue.is_overdue``,
the queues against the states that need someone to act. Finally a rebuild in small
batches gives exactly the tables the one-batch catch-up built.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from projection_helpers import subprocess_env

from domain.catalog import CatalogResource
from domain.demand import DemandStatus, PostStatus
from domain.feedback import Feedback
from domain.identity import Actor, Role
from domain.incentives import ContributionEvaluation
from domain.licensing import Subscription, SubscriptionStatus, business_date
from domain.parties import ApplicationUnit, UnitStatus
from domain.products import DataProduct, ProductStatus
from domain.quality import IssueStatus, QualityIssue
from domain.usage import UsageLedger, period_of
from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config
from projections import views
from projections.contributions import WEIGHTS
from projections.db import memory, read_frame
from projections.log import EventLog
from projections.registry import all_projections
from projections.runner import Runner

ADMIN = Actor("admin.zhao", Role.OPERATOR_ADMIN)
MINE = ("catalog", "units", "usage", "pricing", "feedback", "contributions", "queues")


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Demo:
    config: Config
    runner: Runner
    mp: Marketplace
    clock: MovableClock
    summary: dict[str, int]

    def get(self, aggregate_id: Any) -> Any:
        return self.mp.app.repository.get(UUID(str(aggregate_id)))

    def events(self, topic: str) -> list[Any]:
        """Every domain event of ``topic`` in log order, decoded by the store's mapper."""
        found: list[Any] = []
        position = 0
        while True:
            batch = self.mp.app.recorder.select_notifications(position, 500, topics=(topic,),
                                                              inclusive_of_start=False)
            if not batch:
                return found
            found.extend(self.mp.app.mapper.to_domain_event(n) for n in batch)
            position = batch[-1].id

    def ids(self, topic: str) -> list[str]:
        return [str(e.originator_id) for e in self.events(topic)]


def _postgres_database(request: pytest.FixtureRequest, name: str) -> str:
    import psycopg

    proc = request.getfixturevalue("postgresql_proc")
    base = f"postgresql://{proc.user}:{proc.password or ''}@{proc.host}:{proc.port}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo at scale 0.1, seeded by ``shuyun demo`` in another process, then projected here."""
    data_dir = tmp_path_factory.mktemp(f"read-models-{request.param}")
    if request.param == "sqlite":
        config = Config(data_dir=data_dir)
    else:
        config = Config(data_dir=data_dir, database_url=_postgres_database(request, "read_models_demo"))
    shuyun = Path(sys.executable).parent / "shuyun"
    done = subprocess.run([str(shuyun), "demo", "--scale", "0.1"], env=subprocess_env(config), capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    summary = {m[1].strip(): int(m[2]) for m in re.finditer(r"^  (\D+?)\s+(\d+)$", done.stdout, re.M)}
    clock = MovableClock()
    mp = build(config, clock=clock)
    runner = Runner.open(config, app=mp.app)
    runner.catch_up()
    try:
        yield Demo(config, runner, mp, clock, summary)
    finally:
        runner.close()
        mp.close()


# -- the other process's events arrive -------------------------------------------------------------------


def test_art8_a_demo_seeded_by_another_process_appears_in_every_read_model(demo: Demo) -> None:
    s = demo.summary
    assert s["products"] == 15 and s["uses metered"] > 0  # the demo really ran
    catalog = views.catalog(demo.runner)
    assert catalog.height == s["products"]
    assert catalog.filter(pl.col("listed")).height == s["products listed"]
    assert views.catalog_resources(demo.runner).height == s["catalog resources"]
    assert views.providers(demo.runner).height == s["providers"]
    assert views.units(demo.runner).height == s["units"]
    assert views.unit_subscriptions(demo.runner).height == s["subscriptions"]
    assert views.feedback(demo.runner).height == s["feedback"]
    assert views.quality_issues(demo.runner).height == s["quality issues"]
    published = views.published_contributions(demo.runner)
    assert published["evaluation_id"].n_unique() == s["contribution evaluations"]
    daily = views.usage_daily(demo.runner)
    assert int(daily["queries"].sum()) == s["uses metered"]
    assert int(daily["refusals"].sum()) == s["uses refused"]
    assert demo.runner.lag() == dict.fromkeys(demo.runner.projections, 0)


def test_views_read_a_config_a_database_or_a_runner_alike(demo: Demo) -> None:
    assert_frame_equal(views.catalog(demo.config), views.catalog(demo.runner))
    assert_frame_equal(views.queue(demo.runner.db, "compliance_reviewer"),
                       views.queue(demo.config, "compliance_reviewer"))


# -- catalog and listings (art. 7, 10-14, 24) --------------------------------------------------------------


def test_art7_every_product_row_is_what_the_product_aggregate_says(demo: Demo) -> None:
    subscriptions = [demo.get(i) for i in demo.ids("domain.licensing:Subscription.Created")]
    feedback = [demo.get(i) for i in demo.ids("domain.feedback:Feedback.Given")]
    for row in views.catalog(demo.runner).iter_rows(named=True):
        product: DataProduct = demo.get(row["product_id"])
        assert row["name"] == product.name
        assert row["status"] == product.status.value
        assert row["listed"] == product.is_listed
        assert row["grade"] == product.grade.value
        assert row["delivery_modes"] == [m.value for m in product.delivery_modes]
        assert sorted(row["provider_ids"]) == sorted({str(s.provider_id) for s in product.sources})
        assert row["version_count"] == len(product.versions)
        assert row["latest_rows"] == (product.latest_version.row_count if product.latest_version else None)
        assert row["field_count"] == len(product.fields)
        assert row["personal_field_count"] == len(product.personal_fields)
        assert row["plan_count"] == len(product.plans)
        lowest = min((t.unit_price for p in product.plans.values() for t in p.tiers), default=None)
        assert row["lowest_price"] == (None if lowest is None else float(lowest))
        assert row["price_cap"] == (None if product.price_cap is None else float(product.price_cap))
        assert row["free_for_public_welfare"] is True  # art. 24: always, for every product
        ratings = [f.rating for f in feedback if f.product_id == product.id]
        assert row["rating_count"] == len(ratings)
        assert row["rating_avg"] == (sum(ratings) / len(ratings) if ratings else None)
        subscribers = {s.unit_id for s in subscriptions if s.product_id == product.id
                       and s.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED)}
        assert row["subscriber_count"] == len(subscribers)
        assert row["showcase_count"] == len(product.showcases)


def test_art7_catalog_is_searchable_and_facetable(demo: Demo) -> None:
    everything = views.catalog(demo.runner)
    assert views.catalog(demo.runner, search="RIDERSHIP")["name"].to_list() == [
        n for n in everything["name"].to_list() if "ridership" in n.lower()
    ]
    some = everything.row(0, named=True)
    by_provider = views.catalog(demo.runner, provider=some["provider_ids"][0])
    assert some["product_id"] in by_provider["product_id"].to_list()
    assert all(some["provider_ids"][0] in ids for ids in by_provider["provider_ids"].to_list())
    assert views.catalog(demo.runner, provider=some["providers"][0][:4]).height >= 1
    rows = views.catalog(demo.runner, delivery="row_level_file")
    assert rows.height == sum("row_level_file" in m for m in everything["delivery_modes"].to_list()) > 0
    assert set(views.catalog(demo.runner, grade=["general_1"])["grade"]) == {"general_1"}
    assert views.catalog(demo.runner, category=some["category"])["category"].unique().to_list() == [some["category"]]
    assert views.catalog(demo.runner, free_public_welfare=True).height == everything.height
    assert views.catalog(demo.runner, free_public_welfare=False).is_empty()
    assert views.catalog(demo.runner, listed=True).height == demo.summary["products listed"]
    assert set(views.catalog(demo.runner, status="in_review")["status"]) == {"in_review"}


def test_art35_data_dictionary_and_sample_statistics_are_the_products_schema_and_version(demo: Demo) -> None:
    stats = views.sample_statistics(demo.runner)
    for row in stats.iter_rows(named=True):
        product: DataProduct = demo.get(row["product_id"])
        fields = views.data_dictionary(demo.runner, row["product_id"])
        assert fields["name"].to_list() == list(product.field_names)
        assert fields["description"].to_list() == [f.description for f in product.fields]
        assert fields.filter(pl.col("personal"))["name"].to_list() == list(product.personal_fields)
        assert row["column_count"] == len(product.fields)
        assert row["personal_columns"] == list(product.personal_fields)
        counts = Counter(f.dtype.value for f in product.fields)
        assert dict(p.split(":") for p in row["dtypes"].split(", ")) == {k: str(v) for k, v in counts.items()}
        latest = product.latest_version
        assert (row["version"], row["row_count"], row["content_hash"]) == (
            (latest.number, latest.row_count, latest.content_hash) if latest else (0, None, None)
        )
        versions = views.product_versions(demo.runner, row["product_id"])
        assert versions["content_hash"].to_list() == [v.content_hash for v in product.versions]


def test_art10_catalog_resources_their_schema_versions_and_consents_are_the_aggregates(demo: Demo) -> None:
    resources = views.catalog_resources(demo.runner)
    for row in resources.iter_rows(named=True):
        resource: CatalogResource = demo.get(row["resource_id"])
        assert (row["status"], row["grade"], row["openness"], row["provider_id"]) == (
            resource.status.value, resource.grade.value, resource.openness.value, str(resource.provider_id))
        assert row["version_count"] == len(resource.versions)
        assert views.resource_fields(demo.runner, row["resource_id"])["name"].to_list() == list(resource.field_names)
        assert views.resource_versions(demo.runner, row["resource_id"])["content_hash"].to_list() == [
            v.content_hash for v in resource.versions]
        consents = views.supply_consents(demo.runner, resource_id=row["resource_id"])
        assert dict(zip(consents["product_id"], consents["status"], strict=True)) == {
            k: v.status.value for k, v in resource.supply.items()}
        assert row["supply_pending"] == sum(v.status.value == "pending" for v in resource.supply.values())
    assert set(views.catalog_resources(demo.runner, status="rejected")["openness"]) == {"not_open"}


# -- units and subscriptions (art. 3, 21-23, 34) -------------------------------------------------------------


def test_art22_units_status_qualification_and_members_are_the_aggregates(demo: Demo) -> None:
    for row in views.units(demo.runner).iter_rows(named=True):
        unit: ApplicationUnit = demo.get(row["unit_id"])
        assert (row["status"], row["kind"], row["name"]) == (unit.status.value, unit.kind.value, unit.name)
        members = views.unit_members(demo.runner, row["unit_id"])
        assert dict(zip(members["user_id"], members["role"], strict=True)) == {
            u: r.value for u, r in unit.members.items()}
        assert row["member_count"] == len(unit.members)
        if unit.status is UnitStatus.PENDING_QUALIFICATION:
            assert row["qualification"] is None
        elif unit.status is UnitStatus.REJECTED:
            assert row["qualification"] == "rejected"
        else:
            assert row["qualification"] == "approved"


def test_art22_subscriptions_agreements_and_entitlements_are_the_aggregates(demo: Demo) -> None:
    frame = views.unit_subscriptions(demo.runner)
    for row in frame.iter_rows(named=True):
        sub: Subscription = demo.get(row["subscription_id"])
        assert (row["status"], row["unit_id"], row["product_id"], row["plan_id"], row["purpose_class"]) == (
            sub.status.value, str(sub.unit_id), str(sub.product_id), sub.plan_id, sub.purpose_class.value)
        assert (row["term_start"], row["term_end"]) == (sub.term_start, sub.term_end)
        assert (row["queries_per_period"], row["rows_per_period"], row["privacy_budget"]) == (
            sub.entitlements.queries_per_period, sub.entitlements.rows_per_period, sub.entitlements.privacy_budget)
        assert sorted(row["missing_signatures"]) == sorted(sub.missing_signatures)
        for kind in ("service", "confidentiality"):
            agreement = sub.agreement(kind)
            assert row[f"{kind}_unit"] == (agreement.signed_by_unit or None)
            assert row[f"{kind}_operator"] == (agreement.signed_by_operator or None)
    by_unit = views.unit_subscriptions(demo.runner, frame["unit_id"][0])
    assert set(by_unit["unit_id"]) == {frame["unit_id"][0]}
    agreements = views.subscription_agreements(demo.runner, unit_id=frame["unit_id"][0])
    assert set(agreements["subscription_id"]) == set(by_unit["subscription_id"])


def test_art23_remaining_quota_and_budget_equal_the_usage_service_in_every_period(demo: Demo) -> None:
    periods = sorted(set(views.usage_periods(demo.runner)["period"]))
    checked = 0
    for period in [*periods, "2031-01"]:
        at = datetime.strptime(period + "-15", "%Y-%m-%d").replace(hour=4, tzinfo=UTC)
        demo.clock.now = at
        frame = views.unit_subscriptions(demo.runner, at=at)
        for row in frame.iter_rows(named=True):
            remaining = demo.mp.usage.remaining(ADMIN, row["subscription_id"])
            assert row["current_period"] == remaining.period == period_of(at)
            assert (row["queries_remaining"], row["rows_remaining"], row["budget_remaining"], row["reset_on"]) == (
                remaining.queries, remaining.rows, remaining.budget, remaining.reset_on), row["subscription_id"]
            checked += 1
    assert checked > len(periods)


def test_art8_usage_per_day_is_every_use_and_refusal_on_the_baotou_calendar(demo: Demo) -> None:
    ledgers = {str(e.originator_id): e for e in demo.events("domain.usage:UsageLedger.Opened")}
    expected: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for e in demo.events("domain.usage:UsageLedger.UseRecorded"):
        key = (str(ledgers[str(e.originator_id)].subscription_id), business_date(e.at).isoformat())
        expected[key].update(queries=1, rows_out=e.rows_out)
    for e in demo.events("domain.usage:UsageLedger.UseRefused"):
        key = (str(ledgers[str(e.originator_id)].subscription_id), business_date(e.at).isoformat())
        expected[key].update(refusals=1, **{f"refused_{e.reason}": 1})
    daily = views.usage_daily(demo.runner)
    got = {(r["subscription_id"], r["day"].isoformat()): r for r in daily.iter_rows(named=True)}
    assert set(got) == set(expected)
    for key, counts in expected.items():
        row = got[key]
        for column in ("queries", "rows_out", "refusals", *(c for c in daily.columns if c.startswith("refused_"))):
            assert row[column] == counts[column], (key, column)
    one = daily["subscription_id"][0]
    assert set(views.usage_daily(demo.runner, subscription_id=one)["subscription_id"]) == {one}
    assert views.usage_daily(demo.runner, since="2099-01-01").is_empty()
    for row in views.usage_periods(demo.runner).iter_rows(named=True):
        ledger: UsageLedger = demo.get(row["ledger_id"])
        assert (row["queries_used"], row["rows_used"], row["refusals"]) == (
            ledger.queries_used, ledger.rows_used, ledger.refusals)
        assert math.isclose(row["budget_used"], ledger.budget_used, abs_tol=1e-9)


# -- pricing (art. 24) ---------------------------------------------------------------------------------------------


def test_art24_revenue_of_every_subscription_and_period_is_the_products_quote(demo: Demo) -> None:
    revenue = views.revenue(demo.runner)
    assert revenue.height == views.usage_periods(demo.runner).height
    paid = Decimal("0.00")
    for row in revenue.iter_rows(named=True):
        product: DataProduct = demo.get(row["product_id"])
        quote = product.quote(row["plan_id"], row["purpose_class"], row["queries"])
        assert Decimal(str(row["charge"])).quantize(Decimal("0.01")) == quote, row
        assert row["free"] == (row["purpose_class"] in ("public_governance", "public_welfare"))
        paid += quote
    assert paid > 0
    by_period = views.revenue_by_period(demo.runner)
    assert math.isclose(by_period["revenue"].sum(), float(paid))
    year = int(revenue["period"][0][:4])
    allowed = views.allowed_revenue(demo.runner, year).row(0, named=True)
    in_year = float(revenue.filter(pl.col("period").str.starts_with(str(year)))["charge"].sum())
    assert math.isclose(allowed["revenue"], in_year)
    assert math.isclose(allowed["share_of_allowed_max"], in_year / 1_000_000)
    tight = views.allowed_revenue(demo.runner, year, allowed_max="10.00").row(0, named=True)
    assert math.isclose(tight["excess"], max(0.0, in_year - 10.0))


def test_art24_pricing_review_shows_cap_plans_subscribers_and_revenue_per_product(demo: Demo) -> None:
    subscriptions = [demo.get(i) for i in demo.ids("domain.licensing:Subscription.Created")]
    revenue = views.revenue(demo.runner)
    review = views.pricing_review(demo.runner, year=int(revenue["period"][0][:4]))
    for row in review.iter_rows(named=True):
        product: DataProduct = demo.get(row["product_id"])
        assert row["cap"] == (None if product.price_cap is None else float(product.price_cap))
        assert row["plan_count"] == len(product.plans)
        assert sorted(row["stages"] or []) == sorted({p.stage.value for p in product.plans.values()})
        current = [s for s in subscriptions if s.product_id == product.id
                   and s.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED)]
        for purpose in ("public_governance", "public_welfare", "industry", "commercial"):
            assert row[f"subscribers_{purpose}"] == sum(s.purpose_class.value == purpose for s in current)
        own = revenue.filter(pl.col("product_id") == row["product_id"])["charge"].sum()
        assert math.isclose(row["revenue_total"], own)
        assert math.isclose(row["share_of_allowed_max"], row["revenue_year"] / 1_000_000)


def test_art24_price_history_is_every_cap_and_plan_change_with_its_reason(demo: Demo) -> None:
    for product_id in demo.ids("domain.products:DataProduct.Built"):
        stored = demo.mp.app.recorder.select_events(UUID(product_id))
        changes: list[Any] = [demo.mp.app.mapper.to_domain_event(s) for s in stored]
        expected = [(type(e).__name__, e.reason, e.by.user_id) for e in changes
                    if type(e).__name__ in ("PriceCapSet", "PricePlanSet", "PricePlanRetired")]
        history = views.price_history(demo.runner, product_id)
        names = {"cap_set": "PriceCapSet", "plan_set": "PricePlanSet", "plan_retired": "PricePlanRetired"}
        assert [(names[c], r, u) for c, r, u in history.select("change", "reason", "by_user").iter_rows()] == expected


# -- feedback and quality (art. 11, 17, 26) -------------------------------------------------------------------------


def test_art26_feedback_review_is_the_feedback_given_per_product(demo: Demo) -> None:
    feedback: list[Feedback] = [demo.get(i) for i in demo.ids("domain.feedback:Feedback.Given")]
    review = views.feedback_review(demo.runner)
    for row in review.iter_rows(named=True):
        own = [f for f in feedback if str(f.product_id) == row["product_id"]]
        assert row["feedback_count"] == len(own)
        if own:
            assert math.isclose(row["rating_avg"], sum(f.rating for f in own) / len(own))
            assert math.isclose(row["quality_rating_avg"], sum(f.quality_rating for f in own) / len(own))
        for f in own:
            assert row[f"application_{f.content.application_status.value}"] >= 1
            assert row[f"effect_{f.content.effect.value}"] >= 1
        assert sum(row[f"effect_{e}"] for e in ("none", "minor", "significant", "transformative")) == len(own)
    over_time = views.ratings_over_time(demo.runner)
    assert int(over_time["ratings"].sum()) == len(feedback)


def test_art17_quality_issues_and_their_overdue_flags_follow_the_issue_at_any_moment(demo: Demo) -> None:
    issues = [demo.get(i) for i in demo.ids("domain.quality:QualityIssue.Reported")]
    deadlines = [i.deadline for i in issues if i.deadline is not None]
    moments = [datetime.now(UTC), *(d - timedelta(hours=1) for d in deadlines),
               *(d + timedelta(hours=1) for d in deadlines)]
    overdue_seen = False
    for moment in moments:
        frame = views.quality_issues(demo.runner, at=moment)
        for issue in issues:
            row = frame.filter(pl.col("issue_id") == str(issue.id)).row(0, named=True)
            assert row["status"] == issue.status.value
            assert row["deadline"] == issue.deadline
            assert row["overdue"] == issue.is_overdue(moment)
            overdue_seen |= row["overdue"]
    assert overdue_seen
    for issue in issues:
        by_provider = views.quality_issues(demo.runner, provider_id=issue.provider_id)
        assert str(issue.id) in by_provider["issue_id"].to_list()
    open_only = views.quality_issues(demo.runner, open_only=True)
    assert set(open_only["issue_id"]) == {str(i.id) for i in issues if i.is_open}


def test_art17_feedback_review_counts_open_and_overdue_issues_on_each_products_sources(demo: Demo) -> None:
    issues: list[QualityIssue] = [demo.get(i) for i in demo.ids("domain.quality:QualityIssue.Reported")]
    late = max(i.deadline for i in issues if i.deadline is not None) + timedelta(days=1)
    review = views.feedback_review(demo.runner, at=late)
    for row in review.iter_rows(named=True):
        product: DataProduct = demo.get(row["product_id"])
        own = [i for i in issues if i.is_open and (i.resource_id in product.source_ids or i.product_id == product.id)]
        assert row["open_issues"] == len(own)
        assert row["overdue_issues"] == sum(i.is_overdue(late) for i in own)


# -- contribution incentives (art. 25) -------------------------------------------------------------------------------


def test_art25_contribution_scores_are_their_weighted_components_and_explain_themselves(demo: Demo) -> None:
    frame = views.contributions(demo.runner)
    assert frame.height > 0
    assert math.isclose(sum(WEIGHTS.values()), 1.0)
    for row in frame.iter_rows(named=True):
        total = sum(row[name] * row[f"{name}_weight"] for name in WEIGHTS)
        assert math.isclose(row["score"], total, abs_tol=1e-3)
        for name in WEIGHTS:
            assert 0 <= row[name] <= 100
            assert row[f"{name}_weight"] == WEIGHTS[name]
            assert row[f"{name}_explanation"]
    for _, period in frame.group_by("period"):
        if period["queries"].sum() > 0:
            assert period["application"].max() == 100.0
        if period["revenue"].sum() > 0:
            assert period["value_realised"].max() == 100.0


def test_art25_value_realised_is_revenue_split_equally_among_a_products_sources(demo: Demo) -> None:
    revenue = views.revenue(demo.runner)
    quarter = sorted({f"{p[:4]}-Q{(int(p[5:]) - 1) // 3 + 1}" for p in revenue["period"]})[0]
    months = {f"{quarter[:4]}-{m:02d}" for m in range(3 * int(quarter[-1]) - 2, 3 * int(quarter[-1]) + 1)}
    expected: dict[str, float] = defaultdict(float)
    for row in revenue.filter(pl.col("period").is_in(months)).iter_rows(named=True):
        product: DataProduct = demo.get(row["product_id"])
        for source in product.sources:
            expected[str(source.provider_id)] += (row["charge"] or 0.0) / len(product.sources)
    frame = views.contributions(demo.runner, period=quarter)
    assert frame.height == views.providers(demo.runner).height
    for row in frame.iter_rows(named=True):
        assert math.isclose(row["revenue"], round(expected[row["provider_id"]], 2), abs_tol=0.005)


def test_art25_published_evaluations_are_shown_component_by_component(demo: Demo) -> None:
    published = views.published_contributions(demo.runner)
    for evaluation_id, rows in published.group_by("evaluation_id"):
        evaluation: ContributionEvaluation = demo.get(evaluation_id[0])
        assert rows["component"].to_list() == [c.name for c in evaluation.components]
        assert rows["value"].to_list() == [c.value for c in evaluation.components]
        assert set(rows["score"]) == {evaluation.score}
        assert set(rows["version"]) == {len(evaluation.history)}
    computed = views.contributions(demo.runner)
    matched = computed.filter(pl.col("published_score").is_not_null())
    assert matched.height == published["evaluation_id"].n_unique()


# -- review queues -------------------------------------------------------------------------------------------------


def test_each_role_queue_holds_exactly_what_awaits_that_role(demo: Demo) -> None:
    products = [demo.get(i) for i in demo.ids("domain.products:DataProduct.Built")]
    units = [demo.get(i) for i in demo.ids("domain.parties:ApplicationUnit.Registered")]
    applications = [demo.get(i) for i in demo.ids("domain.demand:DemandApplication.Filed")]
    resources = [demo.get(i) for i in demo.ids("domain.catalog:CatalogResource.Compiled")]
    issues = [demo.get(i) for i in demo.ids("domain.quality:QualityIssue.Reported")]
    posts = [demo.get(i) for i in demo.ids("domain.demand:DemandPost.Posted")]
    subscriptions = [demo.get(i) for i in demo.ids("domain.licensing:Subscription.Created")]
    expected = {
        "unit_qualification": {str(u.id) for u in units if u.status is UnitStatus.PENDING_QUALIFICATION},
        "demand_assessment": {str(a.id) for a in applications if a.status is DemandStatus.SUBMITTED},
        "demand_decision": {str(a.id) for a in applications if a.status is DemandStatus.UNDER_REVIEW},
        "compliance_review": {str(p.id) for p in products if p.status is ProductStatus.IN_REVIEW},
        "catalog_review": {str(r.id) for r in resources if r.status.value == "submitted"},
        "supply_consent": {f"{r.id}/{k}" for r in resources for k, v in r.supply.items()
                           if v.status.value == "pending"},
        "quality_verification": {str(i.id) for i in issues if i.status is IssueStatus.REPORTED},
        "quality_rectification": {str(i.id) for i in issues if i.status is IssueStatus.VERIFIED},
        "quality_closing": {str(i.id) for i in issues if i.status is IssueStatus.RECTIFIED},
        "agreement_signature": {f"{s.id}/{m}" for s in subscriptions if s.status is SubscriptionStatus.PENDING
                                for m in s.missing_signatures},
        "demand_post_response": {str(p.id) for p in posts if p.status is PostStatus.OPEN},
    }
    assert any(expected.values())
    roles = ("operator_admin", "compliance_reviewer", "product_manager", "supervisor", "provider_staff",
             "unit_admin")
    seen: dict[str, set[str]] = defaultdict(set)
    for role in roles:
        for q, item in views.queue(demo.runner, role).select("queue", "item_id").iter_rows():
            seen[q].add(item)
    assert {q: v for q, v in seen.items() if v} == {q: v for q, v in expected.items() if v}


def test_art15_nobody_sees_their_own_product_or_issue_to_review(demo: Demo) -> None:
    products = [demo.get(i) for i in demo.ids("domain.products:DataProduct.Built")]
    in_review = [p for p in products if p.status is ProductStatus.IN_REVIEW]
    assert in_review
    for product in in_review:
        own = views.queue(demo.runner, "compliance_reviewer", user_id=product.builder_id)
        assert str(product.id) not in own["item_id"].to_list()
        other = views.queue(demo.runner, "compliance_reviewer", user_id="someone-else")
        assert str(product.id) in other["item_id"].to_list()


def test_art14_provider_staff_see_only_their_own_providers_requests(demo: Demo) -> None:
    everything = views.queue(demo.runner, "provider_staff")
    assert everything.height > 0
    for provider_id in set(everything["provider_id"]):
        mine = views.queue(demo.runner, "provider_staff", provider_id=provider_id)
        assert set(mine["provider_id"]) == {provider_id}
    supply = everything.filter(pl.col("queue") == "supply_consent")
    assert supply.height > 0 and all(" -> " in s for s in supply["subject"])


def test_art8_the_audit_view_is_the_operation_record_newest_first(demo: Demo) -> None:
    trail = views.audit(demo.runner, limit=50)
    assert trail.height == 50
    assert trail["notification_id"].to_list() == sorted(trail["notification_id"].to_list(), reverse=True)
    admin = views.audit(demo.runner, user_id="admin.zhao", limit=10_000)
    assert set(admin["actor_user_id"]) == {"admin.zhao"}
    unit_id = views.units(demo.runner)["unit_id"][0]
    assert set(views.audit(demo.runner, aggregate_id=unit_id)["aggregate_id"]) == {unit_id}


# -- rebuilding --------------------------------------------------------------------------------------------------


def test_rebuild_from_zero_in_small_batches_gives_the_tables_of_the_one_batch_catch_up(demo: Demo) -> None:
    tables = [t for p in all_projections() if p.name in MINE for t in p.tables]
    before = {t.name: read_frame(demo.runner.db, t) for t in tables}
    assert sum(f.height for f in before.values()) > 500
    with Runner.open(demo.config, app=demo.mp.app, batch_size=23) as small:
        small.rebuild(list(MINE))
        assert small.lag(list(MINE)) == dict.fromkeys(MINE, 0)
        for table in tables:
            assert_frame_equal(read_frame(small.db, table), before[table.name], check_row_order=True)
    # Catch up in uneven chunks into a private database: the same rows, whatever the store.
    log = EventLog.open(demo.mp.app, demo.config)
    projections = [p for p in all_projections() if p.name in MINE]
    chunked = Runner(log, memory(), projections, batch_size=17, closing=[log])
    with chunked:
        for limit in (1, 5, 40, 3, 100, 7):
            chunked.catch_up(limit=limit)
        chunked.catch_up()
        for table in tables:
            assert_frame_equal(read_frame(chunked.db, table), before[table.name], check_row_order=True)
        chunked.db.close()
