"""Storefront (anyone): catalog with search and facets, and each product's page.

A product page shows what a unit needs to decide whether to apply: description, data
dictionary, sample *statistics* (never rows), the sandbox policy in plain words, price
plans with the cap and the free public-welfare path (art. 24), showcases, ratings and the
expert committee's opinions (art. 6).
"""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from streamlit_app.ui.auth import Session
from streamlit_app.ui.context import Resources
from streamlit_app.ui.reads import money


def render(res: Resources, session: Session) -> None:
    st.title("数运 Shuyun — Baotou public data storefront")
    st.caption("Processed public data products, delivered through a policy-checked sandbox "
               "(包头市公共数据运营管理办法, 2023).")
    everything = res.reads.catalog()
    with st.container(border=True):
        search = st.text_input("Search products", key="sf_search", placeholder="bus, 用电, water …")
        c1, c2, c3, c4 = st.columns(4)
        providers = sorted({p for row in everything["providers"].to_list() for p in row.split(", ") if p})
        chosen_providers = c1.multiselect("Provider", providers, key="sf_provider")
        categories = c2.multiselect("Category", sorted(set(everything["category"].to_list())), key="sf_category")
        grades = c3.multiselect("Grade", sorted(set(everything["grade"].to_list())), key="sf_grade")
        delivery = c4.multiselect("Delivery", ["sandbox_aggregate", "row_level_file"], key="sf_delivery")
        top = max([p for p in everything["lowest_price"].to_list() if p is not None] or [0.0])
        max_price = st.slider("Lowest price up to (¥ per unit)", 0.0, max(1.0, float(top)), max(1.0, float(top)),
                              key="sf_price")
        st.caption("Every product is **free for public-welfare and public-governance use** (art. 24): "
                   "choose that purpose class when you apply.")
    filtered = bool(search.strip() or chosen_providers or categories or grades or delivery or max_price < top)
    frame = res.reads.catalog(search=search, providers=chosen_providers, categories=categories, grades=grades,
                              delivery=delivery, max_price=max_price if max_price < top else None) \
        if filtered else everything
    st.subheader(f"{frame.height} product{'s' if frame.height != 1 else ''}")
    if frame.is_empty():
        st.info("No listed product matches these filters.")
        return
    st.dataframe(frame.drop("product_id", "status").to_pandas(), hide_index=True, width="stretch")
    ids = frame["product_id"].to_list()
    names = dict(zip(ids, frame["name"].to_list(), strict=True))
    chosen = st.selectbox("Open a product", ids, format_func=lambda i: names[i], key="sf_product")
    if chosen:
        product_page(res, session, chosen)


def product_page(res: Resources, session: Session, product_id: str) -> None:
    product = res.reads.product(product_id)
    if product is None:
        st.warning("This product is not in the catalog read model yet.")
        return
    st.header(product["name"])
    st.write(product["description"])
    st.caption(f"Category {product['category']} · grade {product['grade']} · provided by "
               f"{', '.join(sorted(product['providers'] or [])) or '?'} · "
               f"delivery: {', '.join(product['delivery_modes'] or [])}")
    dictionary = res.reads.data_dictionary(product_id)
    tabs = st.tabs(["Data dictionary", "Sample statistics", "Policy", "Prices", "Showcases", "Ratings",
                    "Expert opinions"])
    with tabs[0]:
        st.dataframe(dictionary.to_pandas(), hide_index=True, width="stretch")
        st.caption("Personal fields are never output; they only feed aggregates where the policy allows.")
    with tabs[1]:
        stats = res.reads.sample_statistics(product_id)
        cols = st.columns(len(stats))
        for col, (label, value) in zip(cols, stats.items(), strict=True):
            col.metric(label, value)
        st.caption("Statistics only: no raw row of a product is shown on the storefront.")
    with tabs[2]:
        policy: dict[str, Any] = res.reads.policy_words(product, dictionary)
        for line in policy["summary"]:
            st.markdown(f"- {line}")
        st.markdown(f"**May group by:** {', '.join(policy['dimensions']) or '—'}  \n"
                    f"**May filter on:** {', '.join(policy['filters']) or '—'}")
    with tabs[3]:
        st.markdown(f"**Price cap** (set with the price authority): {money(product['price_cap'])} per unit")
        st.markdown("**Public welfare / public governance use: free of charge** — the price below applies to "
                    "industry and commercial use only (art. 24).")
        plans = res.reads.plans(product_id)
        for plan in plans:
            tiers = pl.DataFrame([{"up to": "∞" if t.get("up_to") is None else str(t["up_to"]),
                                   "unit price": money(t["unit_price"])} for t in plan.get("tiers", [])],
                                 schema={"up to": pl.String, "unit price": pl.String})
            st.markdown(f"**{plan.get('name', plan['plan_id'])}** (`{plan['plan_id']}`, {plan.get('billing_unit')}, "
                        f"{plan.get('stage')})")
            st.dataframe(tiers.to_pandas(), hide_index=True)
        if not plans:
            st.info("No price plan published yet.")
    with tabs[4]:
        cases = res.reads.showcases(product_id)
        for case in cases.iter_rows(named=True):
            st.markdown(f"**{case['title']}** — {case['unit_name']}  \n{case['summary']}")
        if cases.is_empty():
            st.info("No showcase yet.")
    with tabs[5]:
        feedback = res.reads.feedback(product_id)
        if not feedback.is_empty():
            st.metric("Average rating", f"{product['rating_avg']:.1f} / 5", f"{product['rating_count']} ratings")
            st.dataframe(feedback.select(
                "rating", pl.col("quality_rating").alias("quality"), pl.col("application_status").alias("status"),
                "effect", pl.col("text").alias("comment")).to_pandas(), hide_index=True)
        else:
            st.info("No ratings yet.")
    with tabs[6]:
        expert_opinions(res.reads.expert_opinions(product_id))
    if session.role is None:
        st.info("Sign in as a member of a qualified unit to apply for this product.")


def expert_opinions(opinions: pl.DataFrame) -> None:
    """What the expert committee advised on the product (art. 6), in the order it was recorded.

    Shown to anyone deciding whether to apply, and to the compliance reviewer deciding the
    product's review: an opinion informs, it decides nothing.
    """
    st.caption("Art. 6: the expert committee advises on major or difficult questions; the operator's "
               "compliance reviewer decides.")
    if opinions.is_empty():
        st.info("No expert opinion on this product.")
        return
    for o in opinions.iter_rows(named=True):
        st.markdown(f"**{o['expert']}** recommends *{o['recommendation'].replace('_', ' ')}* — {o['opinion']}")
        st.caption(f"Recorded by {o['recorded_by']} on {str(o['recorded_at'])[:10]}")
