"""Operator console (product manager, compliance reviewer, operator admin).

Review queues, product and pricing management (every change with a reason), the pricing
and feedback projections with charts, contribution incentives, the audit trail with
filters, and suspension of units and subscriptions (art. 34). Who may do what is the
services' decision (deny by default, separation of duties): the console offers the
actions and shows their refusals.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import polars as pl
import streamlit as st

from domain.errors import DomainError
from domain.identity import Actor
from domain.products import DataProduct
from streamlit_app.ui.auth import Session
from streamlit_app.ui.context import Resources, command, pick

#: Allowed maximum revenue per year the pricing projection compares against (a display setting
#: until the pricing read model carries the configured figure).
ALLOWED_MAX_REVENUE = Decimal("1000000")


def render(res: Resources, session: Session, *, read_only: bool = False) -> None:
    st.title("Supervisor dashboards" if read_only else "Operator console")
    actor = session.actor
    if actor is None:
        st.info("Sign in as operator staff.")
        return
    names = ["Review queues", "Products & pricing", "Pricing projection", "Feedback projection", "Incentives",
             "Audit trail", "Suspension"]
    if read_only:
        names = ["Review queues", "Pricing projection", "Feedback projection", "Incentives", "Audit trail"]
    tabs = dict(zip(names, st.tabs(names), strict=True))
    with tabs["Review queues"]:
        queues(res, actor, read_only)
    if "Products & pricing" in tabs:
        with tabs["Products & pricing"]:
            products(res, actor)
    with tabs["Pricing projection"]:
        pricing(res, actor)
    with tabs["Feedback projection"]:
        feedback(res)
    with tabs["Incentives"]:
        incentives(res)
    with tabs["Audit trail"]:
        audit(res)
    if "Suspension" in tabs:
        with tabs["Suspension"]:
            suspension(res, actor)


def _reason(key: str) -> str:
    return st.text_input("Reason (recorded with the decision)", key=key)


def queues(res: Resources, actor: Actor, read_only: bool) -> None:
    units = {u.id: u for u in res.reads.units()}
    products = {p.id: p for p in res.reads.products()}
    # -- unit qualification
    pending_units = [u for u in units.values() if u.status.value == "pending_qualification"]
    st.subheader(f"Unit qualification ({len(pending_units)})")
    if pending_units:
        st.dataframe(pl.DataFrame([{"unit": u.name, "kind": u.kind.value, "credit code": u.credit_code,
                                    "contact": u.contact_email} for u in pending_units]).to_pandas(), hide_index=True)
        if not read_only:
            with st.form("qualify_unit"):
                index = pick("Unit", len(pending_units), lambda i: pending_units[i].name)
                approved = st.radio("Decision", ["qualify", "reject"], horizontal=True, key="qu_decision")
                reason = _reason("qu_reason")
                submitted = st.form_submit_button("Record decision")
            if submitted:
                unit = pending_units[index]
                command("qualify_unit", lambda: res.mp.parties.qualify_unit(
                    actor, unit.id, approved=approved == "qualify", reason=reason), success=f"{unit.name}: decided.")
    # -- demand applications
    apps = res.reads.applications(statuses=["submitted", "under_review"])
    st.subheader(f"Demand applications to review ({len(apps)})")
    if apps:
        st.dataframe(pl.DataFrame([{
            "unit": units[a.unit_id].name if a.unit_id in units else "?", "filed": str(a.filed_on),
            "by": a.filed_by, "products": ", ".join(products[i.product_id].name for i in a.scope
                                                    if i.product_id in products),
            "purpose": f"{a.purpose} ({a.purpose_class.value})", "scenario": a.scenario,
            "period": f"{a.period_start} → {a.period_end}", "controls": "; ".join(a.security_controls),
            "status": a.status.value, "risk": a.risk_level.value if a.risk_level else "not assessed",
        } for a in apps]).to_pandas(), hide_index=True, width="stretch")
    if apps and not read_only:
        labels = [f"{units[a.unit_id].name if a.unit_id in units else '?'} · {a.filed_on} · {a.status.value}"
                  for a in apps]
        with st.form("assess_risk"):
            st.markdown("**Risk assessment** (compliance reviewer)")
            index = pick("Application", len(apps), lambda i: labels[i], key="ar_app")
            level = st.selectbox("Risk level", ["low", "medium", "high"], key="ar_level")
            notes = st.text_input("Assessment notes", key="ar_notes")
            submitted = st.form_submit_button("Record assessment")
        if submitted:
            app = apps[index]
            command("assess_risk", lambda: res.mp.demand.assess_risk(actor, app.id, level=level, notes=notes),
                    success="Risk assessed.")
        with st.form("decide_application"):
            st.markdown("**Decision** (by someone other than the filer)")
            index = pick("Application", len(apps), lambda i: labels[i], key="dc_app")
            decision = st.radio("Decision", ["approve", "reject"], horizontal=True, key="dc_decision")
            reason = _reason("dc_reason")
            submitted = st.form_submit_button("Decide")
        if submitted:
            app = apps[index]
            command("decide_application", lambda: res.mp.demand.decide_application(
                actor, app.id, approved=decision == "approve", reason=reason), success="Application decided.")
    # -- approved applications still without a subscription per product
    approved_apps = res.reads.applications(statuses=["approved"])
    have = {(s.application_id, s.product_id) for s in res.reads.subscriptions()}
    offers = [(a, i.product_id) for a in approved_apps for i in a.scope
              if (a.id, i.product_id) not in have and i.product_id in products]
    st.subheader(f"Approved, awaiting a subscription ({len(offers)})")
    if offers and not read_only:
        labels = [f"{units[a.unit_id].name if a.unit_id in units else '?'} · {products[p].name}" for a, p in offers]
        with st.form("create_subscription"):
            index = pick("Application and product", len(offers), lambda i: labels[i],
                                 key="cs_offer")
            plan_id = st.text_input("Plan id", key="cs_plan",
                                    help="One of the product's published plans, e.g. " + ", ".join(
                                        sorted({pid for p in products.values() for pid in p.plans})[:4]))
            c1, c2, c3 = st.columns(3)
            queries = c1.number_input("Queries per month", 0, 10_000_000, 200, key="cs_queries")
            rows = c2.number_input("Rows per month", 0, 100_000_000, 50_000, key="cs_rows")
            budget = c3.number_input("Privacy budget ε per month", 0.0, 100.0, 1.0, key="cs_budget")
            submitted = st.form_submit_button("Create subscription")
        if submitted:
            offer, pid = offers[index]
            command("create_subscription", lambda: res.mp.licensing.create_subscription(
                actor, application_id=offer.id, product_id=pid, plan_id=plan_id,
                entitlements={"queries_per_period": int(queries), "rows_per_period": int(rows),
                              "privacy_budget": float(budget)}),
                success="Subscription created; both sides now sign both agreements.")
    # -- subscriptions waiting for the operator's signature
    unsigned = [s for s in res.reads.subscriptions() if s.status.value == "pending"
                and any(not s.agreement(k).signed_by_operator for k in ("service", "confidentiality"))]
    st.subheader(f"Agreements awaiting the operator's signature ({len(unsigned)})")
    for s in unsigned:
        label = f"{units[s.unit_id].name if s.unit_id in units else '?'} · {products[s.product_id].name}"
        st.markdown(f"- {label}: missing {', '.join(s.missing_signatures)}")
        if read_only:
            continue
        for kind in ("service", "confidentiality"):
            if not s.agreement(kind).signed_by_operator and st.button(
                    f"Sign {kind} agreement for the operator", key=f"osign_{s.id}_{kind}"):
                command(f"osign_{s.id}", lambda k=kind, sid=s.id: res.mp.licensing.sign_agreement(actor, sid, kind=k),  # type: ignore[misc]
                        success=f"{kind} agreement signed for the operator.")
    # -- compliance reviews
    in_review = [p for p in products.values() if p.status.value == "in_review"]
    st.subheader(f"Compliance reviews ({len(in_review)})")
    st.caption("The builder of a product cannot approve its own review (art. 22).")
    if in_review:
        st.dataframe(pl.DataFrame([{"product": p.name, "grade": p.grade.value, "builder": p.builder_id,
                                    "delivery": ", ".join(m.value for m in p.delivery_modes)}
                                   for p in in_review]).to_pandas(), hide_index=True)
        if not read_only:
            with st.form("review_compliance"):
                index = pick("Product", len(in_review), lambda i: in_review[i].name)
                decision = st.radio("Decision", ["approve", "reject"], horizontal=True, key="rc_decision")
                reason = _reason("rc_reason_text")
                submitted = st.form_submit_button("Record review")
            if submitted:
                product = in_review[index]
                command("review_compliance", lambda: res.mp.products.review_compliance(
                    actor, product.id, approved=decision == "approve", reason=reason), success="Review recorded.")
    # -- quality issues
    reported = res.reads.issues(statuses=["reported"])
    st.subheader(f"Quality issues to verify ({len(reported)})")
    if reported:
        st.dataframe(pl.DataFrame([{"dimension": i.dimension.value, "description": i.description,
                                    "evidence": i.evidence, "reported by": i.reported_by}
                                   for i in reported]).to_pandas(), hide_index=True)
        if not read_only:
            with st.form("verify_issue"):
                index = pick("Issue", len(reported), lambda i: reported[i].description)
                days = st.number_input("Deadline for the provider (days)", 1, 90, 15, key="vi_days")
                submitted = st.form_submit_button("Verify and send to the provider")
            if submitted:
                issue = reported[index]
                command("verify_issue", lambda: res.mp.quality.verify_issue(actor, issue.id, deadline_days=int(days)),
                        success="Issue verified; the provider has a deadline.")


def products(res: Resources, actor: Actor) -> None:
    all_products = res.reads.products()
    if not all_products:
        st.info("No product yet.")
        return
    st.dataframe(pl.DataFrame([{"product": p.name, "status": p.status.value, "grade": p.grade.value,
                                "cap": str(p.price_cap or "—"), "plans": ", ".join(p.plans)}
                               for p in all_products]).to_pandas(), hide_index=True, width="stretch")
    index = pick("Manage product", len(all_products), lambda i: all_products[i].name,
                         key="pm_product")
    product = all_products[index]
    with st.form("set_cap"):
        st.markdown("**Price cap** (operator admin, with the price authority)")
        cap = st.text_input("Cap per unit (¥)", str(product.price_cap or ""), key="cap_value")
        reason = _reason("cap_reason")
        submitted = st.form_submit_button("Set cap")
    if submitted:
        command("set_cap", lambda: res.mp.products.set_price_cap(actor, product.id, cap=cap, reason=reason),
                success="Price cap set.")
    with st.form("set_plan"):
        st.markdown("**Price plan** (single-tier here; trial until a year of operation, formal after)")
        c1, c2, c3 = st.columns(3)
        plan_id = c1.text_input("Plan id", key="plan_id")
        name = c2.text_input("Name", key="plan_name")
        unit = c3.selectbox("Billing unit", ["per_call", "per_period", "per_product"], key="plan_unit")
        price = c1.text_input("Unit price (¥)", key="plan_price")
        stage = c2.selectbox("Stage", ["trial", "formal"], key="plan_stage")
        reason = _reason("plan_reason")
        submitted = st.form_submit_button("Publish plan")
    if submitted:
        plan: dict[str, Any] = {"plan_id": plan_id, "name": name, "billing_unit": unit,
                                "tiers": [{"up_to": None, "unit_price": price}],
                                "period_months": 1 if unit == "per_period" else None, "stage": stage}
        command("set_plan", lambda: res.mp.products.set_price_plan(actor, product.id, plan=plan, reason=reason),
                success="Plan published.")
    c1, c2 = st.columns(2)
    if product.status.value == "approved" and c1.button("List on the storefront", key="list_product"):
        command("list_product", lambda: res.mp.products.list_product(actor, product.id), success="Listed.")
    if product.is_listed:
        with st.form("unlist"):
            reason = _reason("unlist_reason")
            submitted = st.form_submit_button("Unlist")
        if submitted:
            command("unlist", lambda: res.mp.products.unlist_product(actor, product.id, reason=reason),
                    success="Unlisted.")


def pricing(res: Resources, actor: Actor) -> None:
    st.caption("Revenue is each month's metered use priced by the product's own quote (public-welfare and "
               "public-governance use is free); compared with an allowed maximum of "
               f"¥{ALLOWED_MAX_REVENUE:,.0f} a year.")
    subs = res.reads.subscriptions()
    products = {p.id: p for p in res.reads.products()}
    ledgers = res.reads.ledgers([s.id for s in subs])
    by_sub = {str(s.id): s for s in subs}
    rows = []
    for row in ledgers.iter_rows(named=True):
        s = by_sub[row["subscription_id"]]
        try:
            amount = res.mp.products.quote(actor, s.product_id, plan_id=s.plan_id, purpose=s.purpose_class,
                                           quantity=int(row["queries"]))
        except DomainError:
            amount = Decimal(0)
        rows.append({"product": products[s.product_id].name, "period": row["period"],
                     "purpose": s.purpose_class.value, "revenue": float(amount)})
    revenue = pl.DataFrame(rows, schema={"product": pl.String, "period": pl.String, "purpose": pl.String,
                                         "revenue": pl.Float64})
    total = Decimal(str(revenue["revenue"].sum() or 0))
    c1, c2, c3 = st.columns(3)
    c1.metric("Revenue to date", f"¥{total:,.2f}")
    c2.metric("Share of allowed maximum", f"{(total / ALLOWED_MAX_REVENUE * 100):.2f} %")
    c3.metric("Active subscriptions", sum(1 for s in subs if s.is_active))
    if not revenue.is_empty():
        st.bar_chart(revenue.group_by("period").agg(pl.col("revenue").sum()).sort("period").to_pandas(),
                     x="period", y="revenue")
    by_class = pl.DataFrame([{"purpose class": s.purpose_class.value, "status": s.status.value} for s in subs],
                            schema={"purpose class": pl.String, "status": pl.String})
    if not by_class.is_empty():
        st.markdown("**Subscribers by purpose class**")
        st.bar_chart(by_class.group_by("purpose class").len().to_pandas(), x="purpose class", y="len")
    history = res.reads.audit(aggregate_type="DataProduct", limit=2000)
    if not history.is_empty():
        history = history.filter(pl.col("event_name").str.contains("Price|Plan|Cap"))
        st.markdown("**Price history (every change with its reason)**")
        st.dataframe(history.select("timestamp", "event_name", "actor_user_id", "summary").to_pandas(),
                     hide_index=True, width="stretch")


def feedback(res: Resources) -> None:
    items = res.reads.feedback()
    if not items:
        st.info("No feedback yet.")
        return
    names = {p.id: p.name for p in res.reads.products()}
    frame = pl.DataFrame([{"product": names.get(f.product_id, "?"), "month": str(f.given_at)[:7],
                           "rating": f.content.rating, "quality": f.content.quality_rating,
                           "status": f.content.application_status.value, "effect": f.content.effect.value}
                          for f in items])
    st.dataframe(frame.group_by("product").agg(pl.col("rating").mean().round(2).alias("avg rating"),
                                                pl.len().alias("ratings"),
                                                pl.col("quality").mean().round(2).alias("avg quality"))
                 .sort("product").to_pandas(), hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Effect**")
        st.bar_chart(frame.group_by("effect").len().to_pandas(), x="effect", y="len")
    with c2:
        st.markdown("**Ratings over time**")
        st.line_chart(frame.group_by("month").agg(pl.col("rating").mean()).sort("month").to_pandas(),
                      x="month", y="rating")


def incentives(res: Resources) -> None:
    names = res.reads.provider_names()
    evaluations = res.reads.evaluations()
    if not evaluations:
        st.info("No contribution evaluation published yet.")
        return
    st.dataframe(pl.DataFrame([{
        "provider": names.get(e.provider_id, "?"), "period": e.period, "score": round(e.score, 2),
        **{c.name: f"{c.value:g} × {c.weight:g}" for c in e.components}, "revisions": e.revision_count,
    } for e in evaluations]).to_pandas(), hide_index=True, width="stretch")


def audit(res: Resources) -> None:
    types, users = res.reads.audit_facets()
    c1, c2, c3 = st.columns(3)
    user = c1.selectbox("Who", ["", *users], key="au_user")
    kind = c2.selectbox("What", ["", *types], key="au_type")
    event = c3.text_input("Event name", key="au_event")
    frame = res.reads.audit(user=user or "", aggregate_type=kind or "", event=event.strip())
    st.caption(f"{frame.height} most recent matching events (newest first)")
    st.dataframe(frame.to_pandas(), hide_index=True, width="stretch")


def suspension(res: Resources, actor: Actor) -> None:
    st.caption("Art. 34: stop use at once while misuse is investigated; every action needs a reason.")
    units = res.reads.units()
    units = [u for u in units if u.status.value in ("qualified", "suspended")]
    if units:
        with st.form("unit_suspension"):
            index = pick("Unit", len(units), lambda i: f"{units[i].name} ({units[i].status.value})")
            action = st.radio("Action", ["suspend", "reinstate"], horizontal=True, key="us_action")
            reason = _reason("us_reason")
            submitted = st.form_submit_button("Apply")
        if submitted:
            unit = units[index]
            act = res.mp.parties.suspend_unit if action == "suspend" else res.mp.parties.reinstate_unit
            command("unit_suspension", lambda: act(actor, unit.id, reason=reason), success=f"{unit.name}: {action}ed.")
    subs = [s for s in res.reads.subscriptions() if s.status.value in ("active", "suspended")]
    names = {p.id: p.name for p in res.reads.products()}
    if subs:
        with st.form("subscription_suspension"):
            index = pick("Subscription", len(subs),
                         lambda i: f"{names.get(subs[i].product_id)} · {subs[i].status.value}")
            action = st.radio("Action", ["suspend", "reinstate", "terminate"], horizontal=True, key="ss_action")
            reason = _reason("ss_reason")
            submitted = st.form_submit_button("Apply")
        if submitted:
            sub = subs[index]
            acts = {"suspend": res.mp.licensing.suspend_subscription,
                    "reinstate": res.mp.licensing.reinstate_subscription,
                    "terminate": res.mp.licensing.terminate_subscription}
            command("subscription_suspension", lambda: acts[action](actor, sub.id, reason=reason),
                    success=f"Subscription {action}d.")


__all__ = ["DataProduct", "render"]
