"""AppTest: the forms added for issue 6 (operator, bureau, provider portal, demand board), on SQLite and PostgreSQL.

Each form is sent once as it should be (the store then holds the change) and once with
bad input: the page shows the domain's message next to the form and the store is
unchanged (same last notification id before and after).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import polars as pl
from streamlit.testing.v1 import AppTest

from domain.credentials import ApiClient, ClientStatus
from domain.demand import DemandApplication, DemandPost, PostStatus
from domain.identity import Actor, Role
from domain.incentives import ContributionEvaluation
from domain.products import DataProduct
from domain.quality import IssueStatus, QualityIssue
from marketplace.bootstrap import build
from marketplace.config import Config
from projections import views
from tests.ui.conftest import head, value_of
from tests.ui.helpers import (
    choose,
    edit_table,
    errors,
    form_error,
    forms,
    ok,
    open_page,
    sign_in,
    submit,
    successes,
    tab,
)

BUS = "公交客流时空分布 Bus ridership by district and hour"


def _refused(at: AppTest, store: Config, before: int, form: str, *, field: str | None = None,
             code: str | None = None) -> dict[str, Any]:
    """The form was refused with the domain's message shown, and the store did not change."""
    error = form_error(at, form)
    assert error is not None, f"{form} was not refused"
    if field is not None:
        assert error["field"] == field, error
    if code is not None:
        assert error["code"] == code, error
    assert any((error["field"] or error["message"]) in e for e in errors(at)), errors(at)
    assert head(store) == before
    return error


def _open_application(store: Config, status: str) -> dict[str, Any]:
    return views.demand_applications(store, statuses=status).row(0, named=True)


# -- expert opinions (art. 6) ------------------------------------------------------------------------


def test_art6_reviewer_records_an_expert_opinion_on_an_application(app: AppTest, store: Config) -> None:
    application = _open_application(store, "under_review")
    sign_in(app, "reviewer.wang")
    open_page(app, "Operator console")
    choose(app, "eo_app", lambda label: "under_review" in label)
    before = head(store)
    submit(app, "Record expert opinion")
    _refused(app, store, before, "expert_opinion_application", field="expert")

    app.text_input(key="eo_expert").input("Prof. Zhao, Inner Mongolia University")
    app.text_area(key="eo_opinion").input("District aggregates with a minimum group of 10 are safe.")
    app.selectbox(key="eo_recommendation").set_value("approve_with_conditions")
    submit(app, "Record expert opinion")
    assert "Expert opinion recorded on the application." in successes(app)
    stored = value_of(store, UUID(application["application_id"]))
    assert isinstance(stored, DemandApplication)
    assert [o.expert for o in stored.expert_opinions] == ["Prof. Zhao, Inner Mongolia University"]
    assert stored.expert_opinions[0].recorded_by == "reviewer.wang"
    on_file = next(e for e in app.expander if e.label.startswith("Expert opinions on file"))
    assert "Prof. Zhao, Inner Mongolia University" in " ".join(m.value for m in on_file.markdown)


def test_art6_bureau_records_an_expert_opinion_on_a_product(app: AppTest, store: Config) -> None:
    sign_in(app, "bureau.zhang")
    open_page(app, "Supervisor")
    choose(app, "ep_product", lambda label: label.startswith(BUS))
    app.text_input(key="ep_expert").input("Expert committee")
    before = head(store)
    submit(app, "Record expert opinion on the product")
    _refused(app, store, before, "expert_opinion_product", field="opinion")

    app.text_area(key="ep_opinion").input("Hourly counts per district cannot single out a rider.")
    submit(app, "Record expert opinion on the product")
    assert "Expert opinion recorded on the product." in successes(app)
    product = value_of(store, DataProduct.create_id(BUS))
    assert [(o.expert, o.recommendation.value) for o in product.expert_opinions] == [("Expert committee", "approve")]


# -- multi-tier price plans (art. 24) -----------------------------------------------------------------


def _plan_form(at: AppTest, plan_id: str, reason: str = "price authority approval 2026-11") -> None:
    sign_in(at, "admin.zhao")
    open_page(at, "Operator console")
    choose(at, "pm_product", lambda label: label == BUS)
    at.text_input(key="plan_id").input(plan_id)
    at.text_input(key="plan_name").input("Graduated per call")
    at.text_input(key="plan_reason").input(reason)


def test_art24_plan_with_several_cumulative_tiers_is_published_and_bad_tiers_change_nothing(
        app: AppTest, store: Config) -> None:
    _plan_form(app, "graduated")
    before = head(store)
    # bands out of order: the product's message names the row
    edit_table(app, "plan_tiers", edited={0: {"up_to": 1000, "unit_price": "2.00"}},
               added=[{"up_to": 500, "unit_price": "1.50"}, {"up_to": None, "unit_price": "1.00"}])
    submit(app, "Publish plan")
    error = _refused(app, store, before, "set_plan", field="tiers[1].up_to")
    assert "above the previous tier's 1000" in error["message"]
    # a band above the product's price cap (¥1,500)
    edit_table(app, "plan_tiers", edited={0: {"up_to": 10, "unit_price": "1.00"}},
               added=[{"up_to": None, "unit_price": "99999.00"}])
    submit(app, "Publish plan")
    error = _refused(app, store, before, "set_plan", code="price_above_cap")
    assert "tier 2" in error["message"]
    # no reason
    app.text_input(key="plan_reason").input("")
    edit_table(app, "plan_tiers", edited={0: {"up_to": 1000, "unit_price": "2.00"}},
               added=[{"up_to": 10000, "unit_price": "1.50"}, {"up_to": None, "unit_price": "1.00"}])
    submit(app, "Publish plan")
    _refused(app, store, before, "set_plan", field="reason")

    app.text_input(key="plan_reason").input("price authority approval 2026-11")
    submit(app, "Publish plan")
    assert "Plan published." in successes(app)
    plan = value_of(store, DataProduct.create_id(BUS)).plans["graduated"]
    assert [(t.up_to, t.unit_price) for t in plan.tiers] == [
        (1000, Decimal("2.00")), (10000, Decimal("1.50")), (None, Decimal("1.00"))]
    assert plan.charge(10001) == Decimal("2000.00") + Decimal("13500.00") + Decimal("1.00")
    history = views.price_history(store, DataProduct.create_id(BUS))
    assert history["reason"][-1] == "price authority approval 2026-11"


def test_art24_operator_retires_a_plan_with_a_reason(app: AppTest, store: Config) -> None:
    sign_in(app, "pm.li")
    open_page(app, "Operator console")
    choose(app, "pm_product", lambda label: label == BUS)
    app.run()
    app.selectbox(key="rp_plan").set_value("monthly")
    before = head(store)
    submit(app, "Retire plan")
    _refused(app, store, before, "retire_plan", field="reason")
    app.text_input(key="rp_reason").input("monthly access replaced by per-call tiers")
    submit(app, "Retire plan")
    assert "Plan monthly retired." in successes(app)
    assert "monthly" not in value_of(store, DataProduct.create_id(BUS)).plans
    # a retired plan is no longer offered (read the widget's options as sent: its old value is gone)
    assert list(app.selectbox(key="rp_plan").proto.options) == ["per_call"]


# -- contribution incentives (art. 25) ----------------------------------------------------------------


def _incentives(at: AppTest, store: Config, *, published: bool) -> dict[str, Any]:
    """Choose a provider and period with (or without) a published evaluation; its computed row."""
    sign_in(at, "admin.zhao")
    open_page(at, "Operator console")
    wanted = "· published" if published else "no evaluation yet"
    choose(at, "ce_row", lambda label: wanted in label)
    at.run()
    ok(at)
    label = str(at.selectbox(key="ce_row").value)
    provider, period = label.split(" · ")[:2]
    rows = views.contributions(store, period)
    return rows.filter(rows["provider_name"] == provider).row(0, named=True)


def _editor(at: AppTest) -> str:
    keys = [e.key for e in at.data_editor if e.key and e.key.startswith("ce_components_")]
    assert len(keys) == 1, keys
    return keys[0]


def test_art25_admin_publishes_the_computed_contribution_and_bad_weights_change_nothing(
        app: AppTest, store: Config) -> None:
    row = _incentives(app, store, published=False)
    edit_table(app, _editor(app), edited={0: {"weight": 0.9}})
    before = head(store)
    submit(app, "Publish evaluation")
    error = _refused(app, store, before, "publish_evaluation", field="components")
    assert "weights must sum to 1" in error["message"]

    edit_table(app, _editor(app))
    submit(app, "Publish evaluation")
    assert "Evaluation published." in successes(app)
    stored = value_of(store, ContributionEvaluation.create_id(UUID(row["provider_id"]), row["period"]))
    assert {c.name: (c.value, c.weight) for c in stored.components} == {
        n: (round(row[n], 2), row[f"{n}_weight"]) for n in ("data_quality", "application", "value_realised")}
    assert [c.explanation for c in stored.components] == [
        row[f"{n}_explanation"] for n in ("data_quality", "application", "value_realised")]
    assert stored.history[0].user_id == "admin.zhao"


def test_art25_revising_a_published_evaluation_needs_a_reason(app: AppTest, store: Config) -> None:
    row = _incentives(app, store, published=True)
    before = head(store)
    submit(app, "Revise evaluation")
    _refused(app, store, before, "publish_evaluation", field="reason")
    app.text_input(key="ce_reason").input("recomputed from the read models")
    submit(app, "Revise evaluation")
    assert "Evaluation revised." in successes(app)
    stored = value_of(store, ContributionEvaluation.create_id(UUID(row["provider_id"]), row["period"]))
    assert stored.revision_count == 1 and stored.current.reason == "recomputed from the read models"


# -- quality issues: deadline extension, rejection, closing (art. 17) ---------------------------------


def test_art17_deadline_is_extended_once_with_a_reason(app: AppTest, store: Config) -> None:
    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    label = str(app.selectbox(key="ed_issue").value)
    issue_id = next(UUID(r["issue_id"]) for r in views.quality_issues(store, status="verified").iter_rows(named=True)
                    if label.endswith(r["description"][:60]))
    deadline = value_of(store, issue_id).deadline
    before = head(store)
    submit(app, "Extend deadline")
    _refused(app, store, before, "extend_deadline", field="reason")
    app.number_input(key="ed_days").set_value(0)
    app.text_input(key="ed_reason").input("provider migrating its billing system")
    submit(app, "Extend deadline")
    _refused(app, store, before, "extend_deadline", field="days")

    app.number_input(key="ed_days").set_value(20)
    submit(app, "Extend deadline")
    assert "Deadline extended." in successes(app)
    issue = value_of(store, issue_id)
    assert issue.deadline_extended and issue.extension_reason == "provider migrating its billing system"
    assert issue.deadline == deadline + timedelta(days=20)

    choose(app, "ed_issue", lambda option: option == label)
    app.text_input(key="ed_reason").input("again")
    after = head(store)
    submit(app, "Extend deadline")
    _refused(app, store, after, "extend_deadline", code="deadline_already_extended")


def test_art17_operator_rejects_an_objection_with_a_reason(app: AppTest, store: Config) -> None:
    reported = views.quality_issues(store, status="reported").row(0, named=True)
    sign_in(app, "pm.li")
    open_page(app, "Operator console")
    before = head(store)
    submit(app, "Reject the objection")
    _refused(app, store, before, "reject_issue", field="reason")
    app.text_input(key="rj_reason").input("the figures match the source registry")
    submit(app, "Reject the objection")
    assert "Objection rejected." in successes(app)
    issue = value_of(store, UUID(reported["issue_id"]))
    assert issue.status is IssueStatus.REJECTED and issue.rejection_reason == "the figures match the source registry"


def test_art17_operator_confirms_a_rectification_and_closes_the_issue(app: AppTest, store: Config) -> None:
    rectified = views.quality_issues(store, status="rectified").row(0, named=True)
    sign_in(app, "reviewer.wang")
    open_page(app, "Operator console")
    before = head(store)
    submit(app, "Confirm and close")
    _refused(app, store, before, "close_issue", field="note")
    app.text_input(key="ci_note").input("new version checked")
    submit(app, "Confirm and close")
    assert "Issue closed." in successes(app)
    issue = value_of(store, UUID(rectified["issue_id"]))
    assert isinstance(issue, QualityIssue) and issue.status is IssueStatus.CLOSED


# -- the role fix (art. 22) ----------------------------------------------------------------------------


def test_art22_reviewer_approves_but_only_the_admin_is_offered_the_subscription(app: AppTest, store: Config) -> None:
    """The reported bug: "create subscription" was offered to the compliance reviewer, who may not send it."""
    application = _open_application(store, "under_review")
    mp = build(store)
    try:
        # a high-risk application needs an expert opinion first (art. 6)
        mp.demand.add_expert_opinion(Actor("bureau.zhang", Role.SUPERVISOR), application["application_id"],
                                     expert="Expert committee", opinion="acceptable", recommendation="approve")
        mp.demand.decide_application(Actor("reviewer.wang", Role.COMPLIANCE_REVIEWER),
                                     application["application_id"], approved=True, reason="controls adequate")
    finally:
        mp.close()
    sign_in(app, "reviewer.wang")
    open_page(app, "Operator console")
    assert any(s.value.startswith("Approved, awaiting a subscription (") and not s.value.endswith("(0)")
               for s in app.subheader)
    assert "create_subscription" not in forms(app)
    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    assert "create_subscription" in forms(app)


def test_art34_product_manager_is_not_offered_suspension_and_admin_needs_a_reason(
        app: AppTest, store: Config) -> None:
    sign_in(app, "pm.li")
    open_page(app, "Operator console")
    assert not {"unit_suspension", "subscription_suspension"} & forms(app)
    assert any("may not suspend" in i.value for i in tab(app, "Suspension").info)
    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    before = head(store)
    submit(app, "Apply")
    _refused(app, store, before, "unit_suspension", field="reason")


# -- issue 6, last gaps: product opinions to the reviewer, credentials, refusal, the demand board --------------

MOBILITY = "包头智慧出行科技有限公司"
REAL_ESTATE = "房地产市场月报 Real estate market monthly"


def test_art6_reviewer_sees_the_expert_opinions_on_a_product_under_review(app: AppTest, store: Config) -> None:
    """An opinion recorded on a product in review is on file where the reviewer decides that review."""
    assert views.product_detail(store, DataProduct.create_id(REAL_ESTATE))["status"][0] == "in_review"
    sign_in(app, "reviewer.wang")
    open_page(app, "Operator console")
    assert not any(e.label.startswith("Expert opinions on products under review") for e in app.expander)
    choose(app, "ep_product", lambda label: label.startswith(REAL_ESTATE))
    app.text_input(key="ep_expert").input("Prof. Gao, expert committee")
    app.text_area(key="ep_opinion").input("Monthly district prices cannot single out a sale if groups are >= 5.")
    app.selectbox(key="ep_recommendation").set_value("approve_with_conditions")
    submit(app, "Record expert opinion on the product")
    assert "Expert opinion recorded on the product." in successes(app)
    on_file = next(e for e in app.expander if e.label.startswith("Expert opinions on products under review"))
    assert on_file.label == "Expert opinions on products under review (1)"
    text = " ".join(m.value for m in on_file.markdown)
    assert REAL_ESTATE in text and "Prof. Gao, expert committee" in text and "approve_with_conditions" in text
    stored = value_of(store, DataProduct.create_id(REAL_ESTATE))
    assert [(o.expert, o.recorded_by) for o in stored.expert_opinions] == [
        ("Prof. Gao, expert committee", "reviewer.wang")]


def _issue_client(store: Config, label: str) -> UUID:
    """A unit admin of the mobility unit issues API credentials for its analyst (the demo issues none)."""
    sub = views.unit_subscriptions(store, status="active").filter(
        pl.col("unit_name") == MOBILITY).row(0, named=True)
    mp = build(store)
    try:
        admin = Actor("mobility0.admin", Role.UNIT_ADMIN, unit_id=UUID(sub["unit_id"]))
        return mp.credentials.issue_client(admin, unit_id=sub["unit_id"], user_id="mobility0.analyst", label=label,
                                           subscription_ids=[sub["subscription_id"]]).client_id
    finally:
        mp.close()


def test_art34_operator_admin_revokes_a_units_api_credentials_with_a_reason(app: AppTest, store: Config) -> None:
    client_id = _issue_client(store, "leaky notebook")
    sign_in(app, "pm.li")  # the demo issues no client, so the permission walk cannot show this: only the admin
    open_page(app, "Operator console")
    assert "revoke_api_client" not in forms(app)
    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    choose(app, "rk_client", lambda label: label == f"{MOBILITY} · leaky notebook · mobility0.analyst")
    before = head(store)
    submit(app, "Revoke credentials")
    _refused(app, store, before, "revoke_api_client", field="reason")

    app.text_input(key="rk_reason").input("secret posted in a public repository")
    submit(app, "Revoke credentials")
    assert f"Credentials 'leaky notebook' of {MOBILITY} revoked." in successes(app)
    client = value_of(store, client_id)
    assert isinstance(client, ApiClient)
    assert client.status is ClientStatus.REVOKED and client.status_reason == "secret posted in a public repository"
    row = views.api_clients(store, status="revoked").row(0, named=True)
    assert (row["client_id"], row["revoked_by"]) == (str(client_id), "admin.zhao")
    assert "revoke_api_client" not in forms(app)  # no active client is left to revoke


def test_art17_provider_refuses_rectification_with_a_reason_and_the_issue_stays_open_and_overdue(
        app: AppTest, store: Config) -> None:
    sign_in(app, "bus.clerk")
    open_page(app, "Provider portal")
    provider_id = views.provider_staff(store).filter(pl.col("user_id") == "bus.clerk")["provider_id"][0]
    verified = views.quality_issues(store, provider_id=provider_id, status="verified").row(0, named=True)
    assert not verified["overdue"]
    choose(app, "rf_issue", lambda label: label.endswith(verified["description"]))
    before = head(store)
    submit(app, "Refuse rectification")
    _refused(app, store, before, "refuse_rectification", field="reason")

    app.text_area(key="rf_reason").input("the figures are the operator's own counting error")
    submit(app, "Refuse rectification")
    assert "Refusal recorded; the issue stays open and counts as overdue." in successes(app)
    issue = value_of(store, UUID(verified["issue_id"]))
    assert isinstance(issue, QualityIssue)
    assert issue.status is IssueStatus.VERIFIED and issue.refusal_reason == (
        "the figures are the operator's own counting error")
    table = tab(app, "Quality issues").dataframe[0].value
    shown = table[table["refused because"] == "the figures are the operator's own counting error"]
    assert len(shown) == 1 and bool(shown["overdue"].iloc[0]) and shown["status"].iloc[0] == "verified"
    # refused once only: it is not offered again, and it can still be rectified
    assert "refuse_rectification" not in forms(app)
    assert "rectify_issue" in forms(app)


def _post(store: Config, title: str) -> dict[str, Any]:
    return next(p for p in views.demand_posts(store).iter_rows(named=True) if p["title"] == title)


def test_art20_a_unit_seconds_another_units_need_once(app: AppTest, store: Config) -> None:
    heating = _post(store, "供热管网温度监测")
    mine = views.units(store).filter(pl.col("name") == MOBILITY)["unit_id"][0]
    assert mine not in heating["seconded_by"] and heating["unit_id"] != mine
    sign_in(app, "mobility0.analyst")
    open_page(app, "Demand board")
    assert not any(o.startswith("停车泊位实时占用") for o in app.selectbox(key="sp_post").options)  # its own
    choose(app, "sp_post", lambda label: label.startswith("供热管网温度监测"))
    submit(app, "Second this need")
    assert "Seconded: 供热管网温度监测." in successes(app)
    post = value_of(store, UUID(heating["post_id"]))
    assert isinstance(post, DemandPost)
    assert post.seconded_by[-1] == UUID(mine) and post.interest == heating["interest"] + 1

    choose(app, "sp_post", lambda label: label.startswith("供热管网温度监测"))
    assert str(app.selectbox(key="sp_post").value).endswith("· your unit seconded it")
    before = head(store)
    submit(app, "Second this need")
    _refused(app, store, before, "second_post", code="already_seconded")


def test_art20_the_posting_unit_closes_its_own_need_with_a_reason(app: AppTest, store: Config) -> None:
    parking = _post(store, "停车泊位实时占用")
    sign_in(app, "mobility0.admin")
    open_page(app, "Demand board")
    assert all(o.startswith("停车泊位实时占用") for o in app.selectbox(key="cp_post").options)  # only its own
    choose(app, "cp_post", lambda label: label.startswith("停车泊位实时占用"))
    before = head(store)
    submit(app, "Close the need")
    _refused(app, store, before, "close_post", field="reason")

    app.text_input(key="cp_reason").input("the parking operator now publishes occupancy itself")
    submit(app, "Close the need")
    assert "Closed: 停车泊位实时占用." in successes(app)
    post = value_of(store, UUID(parking["post_id"]))
    assert isinstance(post, DemandPost)
    assert post.status is PostStatus.CLOSED
    assert post.close_reason == "the parking operator now publishes occupancy itself"
    assert "close_post" not in forms(app)  # the unit has no other open need
    board = app.dataframe[0].value
    assert list(board[board["title"] == "停车泊位实时占用"]["closed because"]) == [
        "the parking operator now publishes occupancy itself"]
