"""AppTest: the pages show what the read models (``projections.views``) hold, not a recomputation.

Each test renders a page of the real app on a copy of the seeded demo store, then asks
the same view the page reads from and checks the figures on the page are the view's.
"""

from __future__ import annotations

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from domain.products import DataProduct
from marketplace.config import Config
from projections import views
from streamlit_app.ui.reads import money
from tests.ui.helpers import ok, open_page, sign_in

BUS = "公交客流时空分布 Bus ridership by district and hour"


@pytest.fixture
def app(viewer: AppTest) -> AppTest:
    """These tests only read: they share one seeded store per module and store kind."""
    return viewer


@pytest.fixture
def store(shared_store: Config) -> Config:
    return shared_store


def _tab(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(t for t in at.tabs if t.label == label)


def test_art24_operator_pricing_tab_shows_revenue_from_the_pricing_read_model(app: AppTest, store: Config) -> None:
    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    review = views.pricing_review(store)
    allowed = views.allowed_revenue(store).row(0, named=True)
    total = float(review["revenue_total"].sum())
    assert total > 0, "the demo meters paid use, so the pricing read model has revenue"
    tab = _tab(app, "Pricing projection")
    metrics = {m.label: m.value for m in tab.metric}
    assert metrics["Revenue to date"] == money(total)
    assert metrics[f"Revenue {allowed['year']}"] == money(allowed["revenue"])
    assert metrics["Share of allowed maximum"] == f"{allowed['share_of_allowed_max'] * 100:.2f} %"
    per_product = tab.dataframe[0].value
    shown = dict(zip(per_product["product"], per_product["revenue_total"], strict=True))
    expected = dict(zip(review["name"].to_list(), review["revenue_total"].to_list(), strict=True))
    assert shown == expected
    # subscribers by purpose class: one column per class, as the view counts them
    for column in (c for c in review.columns if c.startswith("subscribers_")):
        assert list(per_product[column]) == review[column].to_list()


def test_art24_operator_price_history_lists_every_change_with_its_reason(app: AppTest, store: Config) -> None:
    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    app.selectbox(key="ph_product").set_value(BUS).run()
    ok(app)
    history = views.price_history(store, DataProduct.create_id(BUS))
    assert not history.is_empty()
    table = _tab(app, "Pricing projection").dataframe[-1].value
    assert list(table["reason"]) == history["reason"].to_list()
    assert list(table["change"]) == history["change"].to_list()


def test_art26_feedback_tab_shows_the_feedback_read_model(app: AppTest, store: Config) -> None:
    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    review = views.feedback_review(store).filter(pl.col("feedback_count") > 0)
    assert not review.is_empty()
    table = _tab(app, "Feedback projection").dataframe[0].value
    shown = dict(zip(table["product"], table["ratings"], strict=True))
    for row in review.iter_rows(named=True):
        assert shown[row["name"]] == row["feedback_count"]


def test_art25_incentives_and_provider_score_show_published_contributions(app: AppTest, store: Config) -> None:
    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    published = views.published_contributions(store)
    assert not published.is_empty()
    table = _tab(app, "Incentives").dataframe[0].value
    assert sorted(table["score"]) == sorted(published.unique("evaluation_id")["score"].to_list())
    sign_in(app, "bus.clerk")
    open_page(app, "Provider portal")
    provider = app.title[0].value.removeprefix("Provider portal — ")
    mine = published.filter(pl.col("provider_name") == provider).unique("evaluation_id")
    assert not mine.is_empty(), f"the demo publishes an evaluation of {provider}"
    scores = {m.label: m.value for m in app.metric if m.label.startswith("Contribution score")}
    assert scores == {f"Contribution score {r['period']}": f"{r['score']:.1f}" for r in mine.iter_rows(named=True)}


def test_art7_storefront_lists_exactly_the_listed_products_of_the_catalog_read_model(
        app: AppTest, store: Config) -> None:
    listed = views.catalog(store, listed=True)
    table = app.dataframe[0].value
    assert list(table["name"]) == listed["name"].to_list()
    assert list(table["subscribers"]) == listed["subscriber_count"].to_list()


def test_art27_product_page_shows_plans_and_showcases_from_the_read_models(app: AppTest, store: Config) -> None:
    product_id = DataProduct.create_id(BUS)
    app.selectbox(key="sf_product").set_value(str(product_id)).run()
    ok(app)
    text = " ".join(m.value for m in app.markdown)
    for case in views.showcases(store, product_id).iter_rows(named=True):
        assert case["title"] in text
    history = views.price_history(store, product_id).filter(pl.col("change") == "plan_set")
    for plan_id in history["plan_id"].unique().to_list():
        assert f"`{plan_id}`" in text
    cap = views.product_detail(store, product_id)["price_cap"][0]
    assert f"{money(cap)} per unit" in text


def test_art23_unit_portal_shows_remaining_quota_from_the_subscription_read_model(
        app: AppTest, store: Config) -> None:
    sign_in(app, "mobility0.admin")
    open_page(app, "Unit portal")
    metrics = [m for m in app.metric if m.label == "Queries left this month"]
    assert metrics, "an active subscription shows what is left"
    active = views.unit_subscriptions(store, status="active").filter(
        pl.col("unit_name") == "包头智慧出行科技有限公司")
    assert sorted(int(m.value) for m in metrics) == sorted(active["queries_remaining"].to_list())


def test_art8_audit_trail_shows_the_audit_read_model_newest_first(app: AppTest, store: Config) -> None:
    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    table = _tab(app, "Audit trail").dataframe[0].value
    newest = views.audit(store, limit=5)
    assert list(table["notification_id"][:5]) == newest["notification_id"].to_list()
    # The filters offer every aggregate type and acting user of the trail (from its counts, not a scan of it).
    trail = views.audit(store, limit=1_000_000)
    assert app.selectbox(key="au_type").options == ["", *sorted(set(trail["aggregate_type"]))]
    assert app.selectbox(key="au_user").options == ["", *sorted(set(trail["actor_user_id"].drop_nulls()))]
    app.selectbox(key="au_type").set_value("ContributionEvaluation").run()
    ok(app)
    filtered = _tab(app, "Audit trail").dataframe[0].value
    assert len(filtered) > 0 and set(filtered["aggregate_type"]) == {"ContributionEvaluation"}


def test_art6_product_page_shows_the_expert_opinions_of_the_catalog_read_model(app: AppTest, store: Config) -> None:
    clinic = DataProduct.create_id("门诊就诊结构（差分隐私） Clinic visits by age band (differential privacy)")
    opinions = views.product_expert_opinions(store, clinic)
    assert opinions.height >= 1, "the demo records the expert committee's opinion on the clinic product"
    app.selectbox(key="sf_product").set_value(str(clinic)).run()
    ok(app)
    shown = _tab(app, "Expert opinions")
    text = " ".join(m.value for m in shown.markdown)
    for o in opinions.iter_rows(named=True):
        assert o["expert"] in text and o["opinion"] in text
        assert o["recommendation"].replace("_", " ") in text
    assert not shown.info
    app.selectbox(key="sf_product").set_value(str(DataProduct.create_id(BUS))).run()
    ok(app)
    assert views.product_expert_opinions(store, DataProduct.create_id(BUS)).is_empty()
    assert [i.value for i in _tab(app, "Expert opinions").info] == ["No expert opinion on this product."]
