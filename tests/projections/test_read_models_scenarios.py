"""Read models through the workflows the demo does not walk, on SQLite and PostgreSQL.

Each test drives the real services on a business clock it controls, lets a runner catch
up and reads the views: prices that change between periods, free public-welfare use,
refusals by reason, entitlement changes, the demand and signature queues, revised
catalog entries, amended feedback, revised evaluations, and events crossing processes
in both directions (another process writes, this one projects; this one writes,
another process projects).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import polars as pl
import pytest
from projection_helpers import World, open_world, run_python, subprocess_env

from domain.errors import DomainError
from domain.identity import Actor, Role
from domain.products import DataProduct
from marketplace.config import Config
from projections import views
from projections.runner import wait_for_position
from tests.scenario import (
    Unit,
    active_subscription,
    approved_application,
    approved_resource,
    basic_plan,
    built_product,
    credit_code,
    listed_product,
    provider,
    provider_clerk,
    qualified_unit,
)

T0 = datetime(2025, 1, 20, 2, 0, tzinfo=UTC)


@pytest.fixture
def world(config: Config) -> Iterator[World]:
    with open_world(config, T0, batch_size=50) as w:
        yield w


def tiered_plan(first: str = "10.00", rest: str = "5.00", plan_id: str = "tiered") -> dict[str, Any]:
    return {"plan_id": plan_id, "name": "Tiered", "billing_unit": "per_call", "stage": "trial",
            "tiers": [{"up_to": 3, "unit_price": first}, {"up_to": None, "unit_price": rest}]}


def use(w: World, unit: Unit, subscription_id: UUID, n: int = 1, *, rows: int = 10, fields: Any = None) -> None:
    for _ in range(n):
        w.mp.usage.record_use(unit.analyst, subscription_id=subscription_id, kind="query", product_version=1,
                              query={"dimensions": ["district"]}, fields=fields or ["district"], rows_out=rows,
                              budget_spent=0.0)
        w.clock.advance(minutes=7)


# -- pricing (art. 24) -----------------------------------------------------------------------------------------


def test_art24_tiers_restart_each_period_and_a_price_change_applies_from_the_next_period(world: World) -> None:
    w = world
    product = listed_product(w.mp, w.people, plan=tiered_plan())
    unit = qualified_unit(w.mp, w.people)
    sid = active_subscription(w.mp, w.people, unit=unit, product_id=product, plan_id="tiered")
    use(w, unit, sid, 5)                              # January: 3 x 10 + 2 x 5
    w.clock.now = datetime(2025, 2, 3, 1, 0, tzinfo=UTC)
    use(w, unit, sid, 2)                              # February opens under the old prices: 2 x 10
    w.mp.products.set_price_plan(w.people.product_manager, product, plan=tiered_plan("8.00", "4.00"),
                                 reason="price review: lower first band")
    use(w, unit, sid, 2)                              # still February: the band continues, old prices
    w.clock.now = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
    use(w, unit, sid, 4)                              # March: new prices, 3 x 8 + 1 x 4

    revenue = views.revenue(w.caught_up())
    charges = dict(zip(revenue["period"], revenue["charge"], strict=True))
    assert charges == {"2025-01": 40.0, "2025-02": 35.0, "2025-03": 28.0}
    quote = w.mp.products.get(DataProduct, product).quote("tiered", "industry", 4)
    assert Decimal(str(charges["2025-03"])) == quote  # the current plan's quote, for the period under it
    history = views.price_history(w.runner, product)
    assert history["change"].to_list() == ["cap_set", "plan_set", "plan_set"]
    assert history["reason"][-1] == "price review: lower first band"
    review = views.pricing_review(w.runner, year=2025).filter(pl.col("product_id") == str(product)).row(0, named=True)
    assert review["revenue_year"] == review["revenue_total"] == 103.0
    assert review["subscribers_industry"] == 1 and review["subscribers"] == 1
    assert any(p == "tiered (per_call, trial): 1-3 @ 8.00; 4+ @ 4.00" for p in review["plans"])


def test_art24_public_welfare_use_is_free_and_per_period_plans_charge_each_period_used(world: World) -> None:
    w = world
    product = listed_product(w.mp, w.people, plan=tiered_plan())
    w.mp.products.set_price_plan(w.people.product_manager, product, plan=basic_plan(
        price="80.00", plan_id="monthly", billing_unit="per_period"), reason="monthly access")
    welfare = qualified_unit(w.mp, w.people, name="公益助老协会", code_body="91150200MA0N7X2C1",
                             admin_user="ngo-admin", analyst_user="ngo-analyst")
    paying = qualified_unit(w.mp, w.people)
    app = approved_application(w.mp, w.people, welfare, product, purpose_class="public_welfare")
    free_sid = active_subscription(w.mp, w.people, unit=welfare, product_id=product, application_id=app,
                                   plan_id="tiered")
    monthly = active_subscription(w.mp, w.people, unit=paying, product_id=product, plan_id="monthly")
    use(w, welfare, free_sid, 6)
    use(w, paying, monthly, 9)
    w.clock.now = datetime(2025, 2, 3, 1, 0, tzinfo=UTC)
    use(w, paying, monthly, 1)

    revenue = views.revenue(w.caught_up(), product_id=product)
    free = revenue.filter(pl.col("subscription_id") == str(free_sid))
    assert free["charge"].to_list() == [0.0] and free["free"].to_list() == [True] and free["queries"][0] == 6
    assert revenue.filter(pl.col("subscription_id") == str(monthly))["charge"].to_list() == [80.0, 80.0]
    review = views.pricing_review(w.runner, year=2025).filter(pl.col("product_id") == str(product)).row(0, named=True)
    assert (review["subscribers_public_welfare"], review["subscribers_industry"]) == (1, 1)
    assert review["plan_count"] == 2


# -- usage (art. 8, 23) ----------------------------------------------------------------------------------------


def test_art23_refusals_are_counted_by_reason_on_their_day_and_consume_nothing(world: World) -> None:
    w = world
    unit = qualified_unit(w.mp, w.people)
    sid = active_subscription(w.mp, w.people, unit=unit, entitlements={
        "queries_per_period": 2, "rows_per_period": 100, "privacy_budget": 0.0})
    use(w, unit, sid, 2, rows=30)
    for fields in (["district"], ["holder_name"]):
        with pytest.raises(DomainError):
            use(w, unit, sid, fields=fields)

    w.caught_up()
    day = views.usage_daily(w.runner, subscription_id=sid).row(0, named=True)
    assert (day["queries"], day["rows_out"], day["refusals"]) == (2, 60, 2)
    assert (day["refused_quota_exceeded"], day["refused_out_of_scope"]) == (1, 1)
    assert day["day"].isoformat() == "2025-01-20"
    row = views.unit_subscriptions(w.runner, unit.id, at=w.clock.now).row(0, named=True)
    remaining = w.mp.usage.remaining(unit.admin, sid)
    assert (row["queries_remaining"], row["rows_remaining"]) == (remaining.queries, remaining.rows) == (0, 40)


def test_art26_workspace_time_is_usage_but_not_a_query_in_the_read_models(world: World) -> None:
    w = world
    unit = qualified_unit(w.mp, w.people)
    sid = active_subscription(w.mp, w.people, unit=unit)
    use(w, unit, sid, 2, rows=5)
    w.mp.usage.record_use(unit.analyst, subscription_id=sid, kind="workspace_session", product_version=1,
                          query={"event": "kernel_ended", "seconds": 42}, fields=[], rows_out=0, budget_spent=0.0)

    w.caught_up()
    day = views.usage_daily(w.runner, subscription_id=sid).row(0, named=True)
    assert (day["queries"], day["workspace_events"]) == (2, 1)
    row = views.unit_subscriptions(w.runner, unit.id, at=w.clock.now).row(0, named=True)
    assert row["queries_remaining"] == w.mp.usage.remaining(unit.admin, sid).queries


def test_art23_changed_entitlements_count_at_once_as_the_usage_service_says(world: World) -> None:
    w = world
    unit = qualified_unit(w.mp, w.people)
    sid = active_subscription(w.mp, w.people, unit=unit)
    use(w, unit, sid, 3, rows=100)
    w.mp.licensing.change_entitlements(w.people.admin, sid, reason="pilot extended", entitlements={
        "queries_per_period": 4, "rows_per_period": 250, "privacy_budget": 0.5})

    row = views.unit_subscriptions(w.caught_up(), subscription_id=sid, at=w.clock.now).row(0, named=True)
    remaining = w.mp.usage.remaining(w.people.admin, sid)
    assert (row["queries_remaining"], row["rows_remaining"], row["budget_remaining"]) == (
        remaining.queries, remaining.rows, remaining.budget) == (1, 0, 0.5)
    assert row["queries_per_period"] == 4


def test_art34_unit_suspension_shows_on_the_unit_and_its_subscriptions(world: World) -> None:
    w = world
    unit = qualified_unit(w.mp, w.people)
    sid = active_subscription(w.mp, w.people, unit=unit)
    w.mp.parties.remove_member(unit.admin, unit.id, user_id=unit.analyst.user_id)
    w.mp.parties.suspend_unit(w.people.admin, unit.id, reason="suspected resale")
    w.caught_up()
    row = views.units(w.runner).row(0, named=True)
    assert (row["status"], row["status_reason"], row["member_count"]) == ("suspended", "suspected resale", 1)
    assert views.unit_subscriptions(w.runner, unit.id)["status"].to_list() == ["suspended"]
    assert views.catalog(w.runner)["subscriber_count"].to_list() == [1]  # suspended still holds it
    w.mp.parties.reinstate_unit(w.people.admin, unit.id, reason="cleared")
    w.mp.licensing.terminate_subscription(w.people.admin, sid, reason="unit asked to end it")
    w.caught_up()
    assert views.units(w.runner, status="qualified").height == 1
    ended = views.unit_subscriptions(w.runner, unit.id).row(0, named=True)
    assert ended["status"] == "terminated" and ended["ended_on"] is not None
    assert views.catalog(w.runner)["subscriber_count"].to_list() == [0]


# -- queues ---------------------------------------------------------------------------------------------------


def test_art22_signatures_await_each_side_until_both_agreements_are_signed(world: World) -> None:
    w = world
    unit = qualified_unit(w.mp, w.people)
    other = qualified_unit(w.mp, w.people, name="另一家单位有限公司", code_body="91150200MA0N7X2D1",
                           admin_user="other-admin", analyst_user="other-analyst")
    sid = active_subscription(w.mp, w.people, unit=unit, sign=False)
    w.caught_up()
    mine = views.queue(w.runner, "unit_admin", unit_id=unit.id)
    assert sorted(mine["item_id"]) == [f"{sid}/confidentiality/unit", f"{sid}/service/unit"]
    assert views.queue(w.runner, "unit_admin", unit_id=other.id).is_empty()
    assert views.queue(w.runner, "operator_admin").filter(pl.col("queue") == "agreement_signature").height == 2
    w.mp.licensing.sign_agreement(unit.admin, sid, kind="service")
    w.caught_up()
    assert views.queue(w.runner, "unit_admin", unit_id=unit.id)["item_id"].to_list() == [
        f"{sid}/confidentiality/unit"]
    assert views.unit_subscriptions(w.runner, unit.id)["missing_signatures"].to_list() == [
        ["service/operator", "confidentiality/unit", "confidentiality/operator"]]
    w.mp.licensing.terminate_subscription(w.people.admin, sid, reason="withdrawn before signing")
    w.caught_up()
    assert views.queue(w.runner, "unit_admin", unit_id=unit.id).is_empty()
    assert views.queue(w.runner, "operator_admin").filter(pl.col("queue") == "agreement_signature").is_empty()


def test_art34_a_unit_terminated_before_its_qualification_leaves_the_queue(world: World) -> None:
    w = world
    unit_id = w.mp.parties.register_unit(Actor("late-admin", Role.APPLICANT), name="迟到的单位有限公司",
                                         credit_code=credit_code("91150200MA0N7X2E1"), kind="company",
                                         contact_email="late@example.cn")
    w.caught_up()
    assert views.queue(w.runner, "compliance_reviewer")["item_id"].to_list() == [str(unit_id)]
    w.mp.parties.terminate_unit(w.people.admin, unit_id, reason="forged licence")
    w.caught_up()
    assert views.queue(w.runner, "compliance_reviewer").is_empty()
    assert views.units(w.runner, status="terminated")["status_reason"].to_list() == ["forged licence"]


def test_art22_an_application_waits_for_assessment_then_for_a_decision_by_someone_else(world: World) -> None:
    w = world
    product = listed_product(w.mp, w.people)
    unit = qualified_unit(w.mp, w.people)
    fields = list(w.mp.products.get(DataProduct, product).field_names)
    app = w.mp.demand.file_application(
        unit.analyst, unit_id=unit.id, scenario="Plan maintenance crews per district and season",
        purpose="maintenance planning", purpose_class="industry", scope=[{"product_id": product, "fields": fields}],
        period_start=w.clock.now.date(), period_end=w.clock.now.date() + timedelta(days=90),
        security_controls=["results stay in the sandbox"],
    )
    w.caught_up()
    reviewer = views.queue(w.runner, "compliance_reviewer", user_id=w.people.reviewer.user_id)
    assert reviewer.select("queue", "item_id").rows() == [("demand_assessment", str(app))]
    assert views.queue(w.runner, "operator_admin").filter(pl.col("queue").str.starts_with("demand")).is_empty()
    w.mp.demand.assess_risk(w.people.reviewer, app, level="medium", notes="district aggregates")
    w.caught_up()
    decision = views.queue(w.runner, "operator_admin").filter(pl.col("queue") == "demand_decision")
    assert decision["item_id"].to_list() == [str(app)] and decision["note"].to_list() == ["risk medium"]
    assert views.queue(w.runner, "compliance_reviewer").filter(pl.col("queue") == "demand_assessment").is_empty()
    w.mp.demand.decide_application(w.people.admin, app, approved=True, reason="controls adequate")
    w.caught_up()
    assert views.queue(w.runner, "operator_admin").filter(pl.col("queue").str.starts_with("demand")).is_empty()


def test_art10_a_rejected_entry_revised_shows_its_new_schema_and_waits_for_review_again(world: World) -> None:
    w = world
    provider_id, clerk = provider(w.mp, w.people)
    rid = w.mp.catalog.compile_resource(
        clerk, provider_id=provider_id, name="Meter readings", description="monthly readings", category="water",
        fields=[{"name": "district", "dtype": "category", "description": "district"}], grade="general_2",
        openness="conditional", update_frequency="monthly")
    w.caught_up()
    assert views.queue(w.runner, "supervisor")["item_id"].to_list() == [str(rid)]
    w.mp.catalog.review_resource(w.people.supervisor, rid, approved=False, reason="describe the units of volume")
    w.caught_up()
    assert views.queue(w.runner, "supervisor").is_empty()
    w.mp.catalog.revise_resource(
        clerk, rid, description="monthly readings in m3", category="water", grade="general_2",
        openness="conditional", update_frequency="monthly",
        fields=[{"name": "district", "dtype": "category", "description": "district"},
                {"name": "volume_m3", "dtype": "float", "description": "volume in cubic metres"}])
    w.caught_up()
    assert views.resource_fields(w.runner, rid)["name"].to_list() == ["district", "volume_m3"]
    row = views.catalog_resources(w.runner).row(0, named=True)
    assert (row["status"], row["field_count"], row["description"]) == ("submitted", 2, "monthly readings in m3")
    assert views.queue(w.runner, "supervisor")["note"].to_list() == ["revised"]


def test_art14_a_supply_request_waits_for_its_providers_staff_only(world: World) -> None:
    w = world
    water = approved_resource(w.mp, w.people)
    power_id, power_clerk = provider(w.mp, w.people, name="Baotou Power Supply", kind="power",
                                     staff_user="power-clerk")
    power = approved_resource(w.mp, w.people, source=(power_id, power_clerk), name="Power use")
    product = built_product(w.mp, w.people, resource_ids=[water, power], consent=False)
    w.caught_up()
    assert views.queue(w.runner, "provider_staff", provider_id=power_id).height == 1
    water_clerk = provider_clerk(w.mp, water)
    w.mp.catalog.decide_supply(water_clerk, water, product_id=product, granted=True, reason="")
    w.caught_up()
    assert views.queue(w.runner, "provider_staff", provider_id=water_clerk.provider_id).is_empty()
    consents = views.supply_consents(w.runner, product_id=product).sort("status")
    assert consents.select("status", "provider_id").rows() == [("granted", str(water_clerk.provider_id)),
                                                               ("pending", str(power_id))]
    assert sorted(views.catalog(w.runner).row(0, named=True)["providers"]) == [
        "Baotou Power Supply", "Baotou Water Supply Company"]


def test_art17_extension_and_refusal_move_the_deadline_and_make_the_issue_overdue(world: World) -> None:
    w = world
    resource = approved_resource(w.mp, w.people)
    clerk = provider_clerk(w.mp, resource)
    issue = w.mp.quality.report_issue(w.people.product_manager, resource_id=resource, dimension="timeliness",
                                      description="March readings arrived six weeks late", evidence="delivery log")
    w.mp.quality.verify_issue(w.people.reviewer, issue, deadline_days=5)
    w.clock.advance(days=2)
    w.mp.quality.extend_deadline(w.people.admin, issue, days=10, reason="survey team on leave")
    w.caught_up()
    task = views.queue(w.runner, "provider_staff", provider_id=clerk.provider_id, at=w.clock.now).row(0, named=True)
    assert task["deadline"] == T0 + timedelta(days=15)
    assert not task["overdue"]
    assert views.queue(w.runner, "provider_staff", at=T0 + timedelta(days=16))["overdue"].to_list() == [True]
    w.mp.quality.refuse_rectification(clerk, issue, reason="the readings are correct")
    w.caught_up()
    row = views.quality_issues(w.runner, at=w.clock.now).row(0, named=True)
    assert (row["overdue"], row["deadline_extended"], row["refusal_reason"]) == (True, True, "the readings are correct")
    assert w.mp.quality.overdue(issue)


def test_art26_amended_feedback_keeps_its_history_and_replies(world: World) -> None:
    w = world
    unit = qualified_unit(w.mp, w.people)
    sid = active_subscription(w.mp, w.people, unit=unit)
    fid = w.mp.feedback.give_feedback(unit.analyst, subscription_id=sid, quality_rating=2, rating=2,
                                      application_status="planned", effect="none")
    w.clock.now = datetime(2025, 2, 10, 3, 0, tzinfo=UTC)
    w.mp.feedback.amend_feedback(unit.analyst, fid, reason="after the fix", quality_rating=5, rating=4,
                                 application_status="in_production", effect="significant",
                                 effect_note="routes re-timed")
    w.mp.feedback.respond_to_feedback(w.people.product_manager, fid, reply="thank you")
    w.caught_up()
    row = views.feedback(w.runner).row(0, named=True)
    assert (row["rating"], row["quality_rating"], row["amendments"], row["replies"], row["last_reply"]) == (
        4, 5, 1, 1, "thank you")
    over_time = views.ratings_over_time(w.runner)
    assert over_time.select("month", "ratings", "rating_mean").rows() == [("2025-01", 1, 2.0), ("2025-02", 1, 4.0)]
    review = views.feedback_review(w.runner).row(0, named=True)
    assert (review["rating_avg"], review["application_in_production"], review["effect_significant"]) == (4.0, 1, 1)
    assert views.catalog(w.runner)["rating_avg"].to_list() == [4.0]


def test_art25_a_revised_evaluation_shows_its_latest_version_and_components(world: World) -> None:
    w = world
    provider_id, _ = provider(w.mp, w.people)
    components = [{"name": "data_quality", "value": 80, "weight": 0.5, "explanation": "few issues"},
                  {"name": "application", "value": 60, "weight": 0.5, "explanation": "some use"}]
    eid = w.mp.incentives.publish_evaluation(w.people.admin, provider_id=provider_id, period="2025-Q1",
                                             components=components)
    components[1]["value"] = 70
    w.mp.incentives.revise_evaluation(w.people.admin, eid, components=components, reason="late usage data")
    w.caught_up()
    published = views.published_contributions(w.runner)
    assert published.select("version", "component", "value").rows() == [(2, "data_quality", 80.0),
                                                                        (2, "application", 70.0)]
    assert set(published["reason"]) == {"late usage data"} and set(published["score"]) == {75.0}
    computed = views.contributions(w.runner, period="2025-Q1").row(0, named=True)
    assert (computed["published_score"], computed["published_version"]) == (75.0, 2)


# -- other processes -------------------------------------------------------------------------------------------


WRITER = textwrap.dedent("""
    from domain.identity import Actor, Role
    from marketplace.bootstrap import build
    from tests.scenario import credit_code
    mp = build()
    try:
        for i in range(3):
            mp.parties.register_unit(Actor(f"far-admin-{i}", Role.APPLICANT), name=f"远方单位{i}",
                                     credit_code=credit_code(f"91150200MA0N8Y{i:03d}"), kind="ngo",
                                     contact_email=f"far{i}@example.cn")
        print(mp.app.recorder.max_notification_id())
    finally:
        mp.close()
""")


def test_art8_events_another_process_writes_reach_this_processs_read_models(world: World) -> None:
    w = world
    w.caught_up()
    last = int(run_python(w.config, WRITER).strip().splitlines()[-1])
    assert w.runner.wait_for(last, timeout=30, drive=True)
    assert sorted(views.units(w.runner)["name"]) == ["远方单位0", "远方单位1", "远方单位2"]
    assert views.queue(w.runner, "operator_admin")["queue"].to_list() == ["unit_qualification"] * 3


def test_art8_a_runner_in_another_process_projects_what_this_process_wrote(world: World) -> None:
    w = world
    product = listed_product(w.mp, w.people)
    last = w.mp.app.recorder.max_notification_id() or 0
    done = subprocess.run([sys.executable, "-m", "projections", "run", "--once"], env=subprocess_env(w.config),
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert wait_for_position(w.config, last, ["catalog", "pricing", "queues"], timeout=0)
    listed = views.catalog(w.config, listed=True)
    assert listed["product_id"].to_list() == [str(product)]
    assert listed["price_cap"].to_list() == [100.0]

