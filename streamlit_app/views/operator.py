"""Operator console (product manager, compliance reviewer, operator admin).

Review queues (with expert opinions, art. 6, and quality deadlines, art. 17), product and
pricing management (multi-tier plans; every change with a reason), the pricing and
feedback projections with charts, contribution incentives (art. 25), the audit trail with
filters, and suspension of units and subscriptions and revocation of units' API
credentials (art. 34). Who may do what is the
services' decision (deny by default, separation of duties): the console offers a form
only to roles holding its permission (``can``, which reads ``marketplace.access``) and
shows the services' refusals of everything else (ownership, state, separation of duties).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import pandas as pd
import polars as pl
import streamlit as st

from domain.identity import Actor
from domain.products import DataProduct, ExpertRecommendation
from streamlit_app.ui.auth import Session
from streamlit_app.ui.context import Resources, can, command, pick
from streamlit_app.ui.reads import money


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
        incentives(res, actor, read_only)
    with tabs["Audit trail"]:
        audit(res)
    if "Suspension" in tabs:
        with tabs["Suspension"]:
            suspension(res, actor)


def _reason(key: str) -> str:
    return st.text_input("Reason (recorded with the decision)", key=key)


def queues(res: Resources, actor: Actor, read_only: bool) -> None:
    def may(permission: str) -> bool:
        """A form only for roles that hold its permission, and none on the supervisor's dashboards."""
        return not read_only and can(actor, permission)

    unit_frame = res.reads.units()
    units = dict(zip(unit_frame["unit_id"].to_list(), unit_frame["name"].to_list(), strict=True))
    products = res.reads.product_names()
    # -- what this role must act on next (the review-queue read model)
    work = res.reads.queue(actor.role, user_id=actor.user_id)
    st.subheader(f"Your work items ({work.height})")
    if work.is_empty():
        st.caption("Nothing waits for your role.")
    else:
        st.dataframe(work.select("queue", "subject", "action", "since", "deadline", "overdue", "note").to_pandas(),
                     hide_index=True, width="stretch")
    # -- unit qualification
    pending_units = unit_frame.filter(pl.col("status") == "pending_qualification").to_dicts()
    st.subheader(f"Unit qualification ({len(pending_units)})")
    if pending_units:
        st.dataframe(pl.DataFrame([{"unit": u["name"], "kind": u["kind"], "credit code": u["credit_code"],
                                    "contact": u["contact_email"]} for u in pending_units]).to_pandas(),
                     hide_index=True)
        if may("unit.qualify"):
            with st.form("qualify_unit"):
                index = pick("Unit", len(pending_units), lambda i: pending_units[i]["name"])
                approved = st.radio("Decision", ["qualify", "reject"], horizontal=True, key="qu_decision")
                reason = _reason("qu_reason")
                submitted = st.form_submit_button("Record decision")
            if submitted:
                unit = pending_units[index]
                command("qualify_unit", lambda: res.mp.parties.qualify_unit(
                    actor, UUID(unit["unit_id"]), approved=approved == "qualify", reason=reason),
                    success=f"{unit['name']}: decided.")
    # -- demand applications
    apps = res.reads.applications(statuses=["submitted", "under_review"])
    st.subheader(f"Demand applications to review ({len(apps)})")
    if apps:
        st.dataframe(pl.DataFrame([{
            "unit": units.get(a["unit_id"], "?"), "filed": str(a["filed_on"]),
            "by": a["filed_by"], "products": ", ".join(products[i] for i in a["product_ids"] if i in products),
            "purpose": f"{a['purpose']} ({a['purpose_class']})", "scenario": a["scenario"],
            "period": f"{a['period_start']} → {a['period_end']}", "controls": "; ".join(a["security_controls"]),
            "status": a["status"], "risk": a["risk_level"] or "not assessed",
        } for a in apps]).to_pandas(), hide_index=True, width="stretch")
    labels = [f"{units.get(a['unit_id'], '?')} · {a['filed_on']} · {a['status']}" for a in apps]
    opinions_on_file(apps, labels)
    if apps and may("demand.assess"):
        with st.form("assess_risk"):
            st.markdown("**Risk assessment** (compliance reviewer)")
            index = pick("Application", len(apps), lambda i: labels[i], key="ar_app")
            level = st.selectbox("Risk level", ["low", "medium", "high"], key="ar_level")
            notes = st.text_input("Assessment notes", key="ar_notes")
            submitted = st.form_submit_button("Record assessment")
        if submitted:
            app = apps[index]
            command("assess_risk", lambda: res.mp.demand.assess_risk(
                actor, app["application_id"], level=level, notes=notes), success="Risk assessed.")
    if apps and may("expert.opine"):
        application_opinion(res, actor, apps, labels)
    if apps and may("demand.decide"):
        with st.form("decide_application"):
            st.markdown("**Decision** (by someone other than the filer)")
            index = pick("Application", len(apps), lambda i: labels[i], key="dc_app")
            decision = st.radio("Decision", ["approve", "reject"], horizontal=True, key="dc_decision")
            reason = _reason("dc_reason")
            submitted = st.form_submit_button("Decide")
        if submitted:
            app = apps[index]
            command("decide_application", lambda: res.mp.demand.decide_application(
                actor, app["application_id"], approved=decision == "approve", reason=reason),
                success="Application decided.")
    # -- approved applications still without a subscription per product
    approved_apps = res.reads.applications(statuses=["approved"])
    subscriptions = res.reads.subscriptions()
    have = set(zip(subscriptions["application_id"].to_list(), subscriptions["product_id"].to_list(), strict=True))
    offers = [(a, p) for a in approved_apps for p in a["product_ids"]
              if (a["application_id"], p) not in have and p in products]
    st.subheader(f"Approved, awaiting a subscription ({len(offers)})")
    if offers and may("subscription.create"):
        labels = [f"{units.get(a['unit_id'], '?')} · {products[p]}" for a, p in offers]
        plan_ids = res.reads.plan_ids()
        with st.form("create_subscription"):
            index = pick("Application and product", len(offers), lambda i: labels[i],
                                 key="cs_offer")
            plan_id = st.text_input("Plan id", key="cs_plan",
                                    help="One of the product's published plans, e.g. " + ", ".join(plan_ids[:4]))
            c1, c2, c3 = st.columns(3)
            queries = c1.number_input("Queries per month", 0, 10_000_000, 200, key="cs_queries")
            rows = c2.number_input("Rows per month", 0, 100_000_000, 50_000, key="cs_rows")
            budget = c3.number_input("Privacy budget ε per month", 0.0, 100.0, 1.0, key="cs_budget")
            submitted = st.form_submit_button("Create subscription")
        if submitted:
            offer, pid = offers[index]
            command("create_subscription", lambda: res.mp.licensing.create_subscription(
                actor, application_id=offer["application_id"], product_id=pid, plan_id=plan_id,
                entitlements={"queries_per_period": int(queries), "rows_per_period": int(rows),
                              "privacy_budget": float(budget)}),
                success="Subscription created; both sides now sign both agreements.")
    # -- subscriptions waiting for the operator's signature
    unsigned = subscriptions.filter(
        (pl.col("status") == "pending")
        & (pl.col("service_operator").is_null() | pl.col("confidentiality_operator").is_null())).to_dicts()
    st.subheader(f"Agreements awaiting the operator's signature ({len(unsigned)})")
    for s in unsigned:
        sid = s["subscription_id"]
        label = f"{s['unit_name'] or '?'} · {s['product_name'] or '?'}"
        st.markdown(f"- {label}: missing {', '.join(s['missing_signatures'])}")
        if not may("subscription.sign_operator"):
            continue
        for kind in ("service", "confidentiality"):
            if not s[f"{kind}_operator"] and st.button(
                    f"Sign {kind} agreement for the operator", key=f"osign_{sid}_{kind}"):
                command(f"osign_{sid}", lambda k=kind, sid=sid: res.mp.licensing.sign_agreement(  # type: ignore[misc]
                    actor, UUID(sid), kind=k), success=f"{kind} agreement signed for the operator.")
    # -- compliance reviews
    in_review = [r for r in (res.reads.product(pid) for pid in
                             res.reads.catalog(listed_only=False).filter(pl.col("status") == "in_review")["product_id"])
                 if r is not None]
    st.subheader(f"Compliance reviews ({len(in_review)})")
    st.caption("The builder of a product cannot approve its own review (art. 22).")
    if in_review:
        st.dataframe(pl.DataFrame([{"product": p["name"], "grade": p["grade"], "builder": p["builder_id"],
                                    "delivery": ", ".join(p["delivery_modes"] or []),
                                    "expert opinions": p["expert_opinion_count"] or 0}
                                   for p in in_review]).to_pandas(), hide_index=True)
        product_opinions_on_file(res, in_review)
        if may("product.review"):
            with st.form("review_compliance"):
                index = pick("Product", len(in_review), lambda i: in_review[i]["name"])
                decision = st.radio("Decision", ["approve", "reject"], horizontal=True, key="rc_decision")
                reason = _reason("rc_reason_text")
                submitted = st.form_submit_button("Record review")
            if submitted:
                product = in_review[index]
                command("review_compliance", lambda: res.mp.products.review_compliance(
                    actor, UUID(product["product_id"]), approved=decision == "approve", reason=reason),
                    success="Review recorded.")
    if may("expert.opine"):
        product_opinion(res, actor)
    # -- quality issues
    reported = res.reads.issues(status="reported").to_dicts()
    st.subheader(f"Quality issues to verify ({len(reported)})")
    if reported:
        st.dataframe(pl.DataFrame([{"dimension": i["dimension"], "description": i["description"],
                                    "evidence": i["evidence"], "reported by": i["reported_by"]}
                                   for i in reported]).to_pandas(), hide_index=True)
        if may("quality.verify"):
            with st.form("verify_issue"):
                index = pick("Issue", len(reported), lambda i: reported[i]["description"])
                days = st.number_input("Deadline for the provider (days)", 1, 90, 15, key="vi_days")
                submitted = st.form_submit_button("Verify and send to the provider")
            if submitted:
                issue = reported[index]
                command("verify_issue", lambda: res.mp.quality.verify_issue(
                    actor, UUID(issue["issue_id"]), deadline_days=int(days)),
                        success="Issue verified; the provider has a deadline.")
            with st.form("reject_issue"):
                st.markdown("**Not upheld** — the reason is recorded for the reporter")
                index = pick("Issue", len(reported), lambda i: reported[i]["description"], key="rj_issue")
                reason = st.text_input("Why the objection is not upheld", key="rj_reason")
                submitted = st.form_submit_button("Reject the objection")
            if submitted:
                issue = reported[index]
                command("reject_issue", lambda: res.mp.quality.reject_issue(
                    actor, UUID(issue["issue_id"]), reason=reason), success="Objection rejected.")
    quality_follow_up(res, actor, may)


def quality_follow_up(res: Resources, actor: Actor, may: Callable[[str], bool]) -> None:
    """Verified issues wait for the provider by a deadline the operator may extend once, with a reason;
    rectified ones wait for the operator to confirm and close them (art. 17)."""
    verified = res.reads.issues(status="verified").to_dicts()
    st.subheader(f"Quality issues awaiting rectification ({len(verified)})")
    if verified:
        st.dataframe(pl.DataFrame([{
            "resource": i["resource_name"], "provider": i["provider_name"], "description": i["description"],
            "deadline": str(i["deadline"])[:16] if i["deadline"] else "—", "overdue": i["overdue"],
            "extended": bool(i["deadline_extended"]), "extension reason": i["extension_reason"] or "",
        } for i in verified]).to_pandas(), hide_index=True, width="stretch")
    if verified and may("quality.extend"):
        with st.form("extend_deadline"):
            st.markdown("**Extend a deadline** (once per issue, with a reason)")
            index = pick("Issue", len(verified), lambda i: _issue_label(verified[i]), key="ed_issue")
            days = st.number_input("Extra days", min_value=0, max_value=365, value=14, step=1, key="ed_days")
            reason = st.text_input("Reason for the extension", key="ed_reason")
            submitted = st.form_submit_button("Extend deadline")
        if submitted:
            issue = verified[index]
            command("extend_deadline", lambda: res.mp.quality.extend_deadline(
                actor, UUID(issue["issue_id"]), days=int(days), reason=reason), success="Deadline extended.")
    rectified = res.reads.issues(status="rectified").to_dicts()
    st.subheader(f"Rectified, to confirm ({len(rectified)})")
    if rectified:
        st.dataframe(pl.DataFrame([{
            "resource": i["resource_name"], "description": i["description"],
            "correction": i["rectification_note"], "late": bool(i["rectified_late"]),
        } for i in rectified]).to_pandas(), hide_index=True, width="stretch")
    if rectified and may("quality.verify"):
        with st.form("close_issue"):
            index = pick("Issue", len(rectified), lambda i: _issue_label(rectified[i]), key="ci_issue")
            note = st.text_input("Closing note", key="ci_note")
            submitted = st.form_submit_button("Confirm and close")
        if submitted:
            issue = rectified[index]
            command("close_issue", lambda: res.mp.quality.close_issue(actor, UUID(issue["issue_id"]), note=note),
                    success="Issue closed.")


def _issue_label(issue: dict[str, Any]) -> str:
    return f"{issue['resource_name'] or '?'} · {issue['description'][:60]}"


def opinions_on_file(apps: list[dict[str, Any]], labels: list[str]) -> None:
    """What the expert committee said on the open applications, for whoever decides them (art. 6)."""
    on_file = [(labels[i], o) for i, a in enumerate(apps) for o in a.get("expert_opinions") or []]
    if on_file:
        with st.expander(f"Expert opinions on file ({len(on_file)})"):
            for label, o in on_file:
                st.markdown(f"- {label}: **{o['expert']}** recommends *{o['recommendation']}* — {o['opinion']}")


def product_opinions_on_file(res: Resources, products: list[dict[str, Any]]) -> None:
    """What the expert committee said on the products under review, for the reviewer who decides them (art. 6)."""
    ids = [p["product_id"] for p in products]
    on_file = res.reads.expert_opinions().filter(pl.col("product_id").is_in(ids))
    if on_file.is_empty():
        return
    with st.expander(f"Expert opinions on products under review ({on_file.height})"):
        for o in on_file.iter_rows(named=True):
            st.markdown(f"- {o['product_name']}: **{o['expert']}** recommends *{o['recommendation']}* — "
                        f"{o['opinion']}")


def application_opinion(res: Resources, actor: Actor, apps: list[dict[str, Any]], labels: list[str]) -> None:
    """The expert committee's opinion on a demand application (art. 6); a high-risk one needs one to be approved."""
    with st.form("expert_opinion_application"):
        st.markdown("**Expert opinion on an application** (art. 6: high risk needs one before approval)")
        index = pick("Application", len(apps), lambda i: labels[i], key="eo_app")
        expert, opinion, recommendation = _opinion_fields("eo")
        submitted = st.form_submit_button("Record expert opinion")
    if submitted:
        app = apps[index]
        command("expert_opinion_application", lambda: res.mp.demand.add_expert_opinion(
            actor, app["application_id"], expert=expert, opinion=opinion, recommendation=recommendation),
            success="Expert opinion recorded on the application.")


def product_opinion(res: Resources, actor: Actor) -> None:
    """The expert committee's opinion on a product (art. 6): it informs the compliance reviewer, who decides."""
    catalog = sorted(res.reads.catalog(listed_only=False).to_dicts(),
                     key=lambda p: (p["status"] != "in_review", p["name"]))  # those under review first
    if not catalog:
        return
    with st.form("expert_opinion_product"):
        st.markdown("**Expert opinion on a product** (art. 6)")
        index = pick("Product", len(catalog), lambda i: f"{catalog[i]['name']} ({catalog[i]['status']})",
                     key="ep_product")
        expert, opinion, recommendation = _opinion_fields("ep")
        submitted = st.form_submit_button("Record expert opinion on the product")
    if submitted:
        product = catalog[index]
        command("expert_opinion_product", lambda: res.mp.products.add_expert_opinion(
            actor, product["product_id"], expert=expert, opinion=opinion, recommendation=recommendation),
            success="Expert opinion recorded on the product.")


def expert_opinions(res: Resources, actor: Actor) -> None:
    """Both opinion forms, for the bureau's page (its console view is read-only)."""
    st.header("Expert opinions (art. 6)")
    apps = res.reads.applications(statuses=["submitted", "under_review"])
    if apps:
        units = res.reads.units()
        names = dict(zip(units["unit_id"].to_list(), units["name"].to_list(), strict=True))
        application_opinion(res, actor, apps,
                            [f"{names.get(a['unit_id'], '?')} · {a['filed_on']} · {a['status']}" for a in apps])
    else:
        st.caption("No demand application is open for an opinion.")
    product_opinion(res, actor)


def _opinion_fields(prefix: str) -> tuple[str, str, str]:
    expert = st.text_input("Expert (name and affiliation)", key=f"{prefix}_expert")
    opinion = st.text_area("Opinion", key=f"{prefix}_opinion")
    recommendation = st.selectbox("Recommendation", [r.value for r in ExpertRecommendation],
                                  key=f"{prefix}_recommendation")
    return expert, opinion, recommendation


def products(res: Resources, actor: Actor) -> None:
    review = res.reads.pricing_review()
    if review.is_empty():
        st.info("No product yet.")
        return
    st.dataframe(review.select(
        pl.col("name").alias("product"), "status", pl.col("cap").cast(pl.String).fill_null("—").alias("cap"),
        pl.col("plans").list.join("; ").fill_null("").alias("plans"),
    ).to_pandas(), hide_index=True, width="stretch")
    all_products = review.to_dicts()
    index = pick("Manage product", len(all_products), lambda i: all_products[i]["name"], key="pm_product")
    product = all_products[index]
    product_id = UUID(product["product_id"])
    if can(actor, "product.set_cap"):
        with st.form("set_cap"):
            st.markdown("**Price cap** (operator admin, with the price authority)")
            cap = st.text_input("Cap per unit (¥)", "" if product["cap"] is None else f"{product['cap']:.2f}",
                                key="cap_value")
            reason = _reason("cap_reason")
            submitted = st.form_submit_button("Set cap")
        if submitted:
            command("set_cap", lambda: res.mp.products.set_price_cap(actor, product_id, cap=cap, reason=reason),
                    success="Price cap set.")
    if can(actor, "product.price"):
        price_plan(res, actor, product_id)
    if not can(actor, "product.list"):
        return
    c1, _ = st.columns(2)
    if product["status"] == "approved" and c1.button("List on the storefront", key="list_product"):
        command("list_product", lambda: res.mp.products.list_product(actor, product_id), success="Listed.")
    if product["status"] == "listed":
        with st.form("unlist"):
            reason = _reason("unlist_reason")
            submitted = st.form_submit_button("Unlist")
        if submitted:
            command("unlist", lambda: res.mp.products.unlist_product(actor, product_id, reason=reason),
                    success="Unlisted.")


#: What the tier editor starts with: one open-ended band (an empty "up to" means "and every unit beyond").
NEW_TIERS = pd.DataFrame({"up_to": pd.Series([None], dtype="Int64"), "unit_price": pd.Series([""], dtype="object")})


def price_plan(res: Resources, actor: Actor, product_id: UUID) -> None:
    """Publish a plan with as many cumulative tiers as it needs, or retire one; each change with a reason (art. 24).

    Tiers are graduated: units 1..up_to of the first row cost its price, the next band
    the next row's price, and so on; the last row's "up to" stays empty. Whether the
    tiers are well formed and under the cap is the product's decision, shown as its message.
    """
    with st.form("set_plan"):
        st.markdown("**Price plan** — cumulative tiers: each band of units is charged at its own price; leave "
                    "“Up to” empty on the last row. Trial prices until a year of operation, formal after.")
        c1, c2, c3 = st.columns(3)
        plan_id = c1.text_input("Plan id", key="plan_id")
        name = c2.text_input("Name", key="plan_name")
        unit = c3.selectbox("Billing unit", ["per_call", "per_period", "per_product"], key="plan_unit")
        months = c1.number_input("Months per period (per-period plans)", 1, 120, 1, key="plan_months")
        stage = c2.selectbox("Stage", ["trial", "formal"], key="plan_stage")
        tiers = st.data_editor(NEW_TIERS, num_rows="dynamic", key="plan_tiers", hide_index=True, column_config={
            "up_to": st.column_config.NumberColumn("Up to (units, cumulative; empty on the last row)", step=1),
            "unit_price": st.column_config.TextColumn("Unit price (¥)"),
        })
        reason = _reason("plan_reason")
        submitted = st.form_submit_button("Publish plan")
    if submitted:
        plan: dict[str, Any] = {"plan_id": plan_id, "name": name, "billing_unit": unit, "tiers": table_rows(tiers),
                                "period_months": int(months) if unit == "per_period" else None, "stage": stage}
        command("set_plan", lambda: res.mp.products.set_price_plan(actor, product_id, plan=plan, reason=reason),
                success="Plan published.")
    plans = [p["plan_id"] for p in res.reads.plans(product_id)]
    if plans:
        with st.form("retire_plan"):
            plan_id = st.selectbox("Plan to retire", plans, key="rp_plan")
            reason = _reason("rp_reason")
            submitted = st.form_submit_button("Retire plan")
        if submitted:
            command("retire_plan", lambda: res.mp.products.retire_price_plan(
                actor, product_id, plan_id=plan_id, reason=reason), success=f"Plan {plan_id} retired.")


def cell(value: Any) -> Any:
    """An edited table cell as a plain value: empty is ``None``, ``3.0`` is ``3``; the domain judges the rest."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.strip() if isinstance(value, str) else value


def table_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of an edited table as plain dicts, leaving out rows left entirely blank."""
    rows = [{k: cell(v) for k, v in row.items()} for row in frame.to_dict("records")]
    return [r for r in rows if any(v not in (None, "") for v in r.values())]


def pricing(res: Resources, actor: Actor) -> None:
    """The pricing read model: revenue (metered use x the plan in force; public welfare and governance
    free), its share of the allowed maximum, subscribers by purpose class, and every price change."""
    allowed = res.reads.allowed_revenue()
    review = res.reads.pricing_review()
    st.caption("Revenue is each month's metered use priced by the plan in force (public-welfare and "
               "public-governance use is free); compared with the allowed maximum of "
               f"{money(allowed.get('allowed_max'))} for {allowed.get('year', '—')}.")
    total = float(review["revenue_total"].sum() or 0.0) if not review.is_empty() else 0.0
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Revenue to date", money(total))
    c2.metric(f"Revenue {allowed.get('year', '')}", money(allowed.get("revenue")))
    share = allowed.get("share_of_allowed_max")
    c3.metric("Share of allowed maximum", "—" if share is None else f"{share * 100:.2f} %")
    c4.metric("Subscribers", int(review["subscribers"].sum() or 0) if not review.is_empty() else 0)
    if allowed.get("excess"):
        st.warning(f"Revenue exceeds the allowed maximum by {money(allowed['excess'])}: "
                   "deducted from the next period.")
    if review.is_empty():
        st.info("No product yet.")
        return
    purpose_columns = [c for c in review.columns if c.startswith("subscribers_")]
    st.markdown("**Per product**")
    st.dataframe(review.select(
        pl.col("name").alias("product"), "status", "cap", "plan_count", "lowest_unit_price", "subscribers",
        *purpose_columns, "revenue_total", "revenue_year", (pl.col("share_of_allowed_max") * 100).round(3)
        .alias("share of allowed max %"), "price_changes",
    ).to_pandas(), hide_index=True, width="stretch")
    by_period = res.reads.revenue_by_period()
    if not by_period.is_empty():
        st.markdown("**Revenue per month**")
        st.bar_chart(by_period.group_by("period").agg(pl.col("revenue").sum()).sort("period").to_pandas(),
                     x="period", y="revenue")
    by_class = review.select([pl.col(c).sum().alias(c.removeprefix("subscribers_")) for c in purpose_columns])
    if not by_class.is_empty():
        st.markdown("**Subscribers by purpose class**")
        st.bar_chart(by_class.unpivot(variable_name="purpose class", value_name="subscribers").to_pandas(),
                     x="purpose class", y="subscribers")
    products = review.to_dicts()
    index = pick("Price history of", len(products), lambda i: products[i]["name"], key="ph_product")
    history = res.reads.price_history(products[index]["product_id"])
    st.markdown("**Price history (every change with its reason)**")
    if history.is_empty():
        st.info("No price change yet.")
    else:
        shown = [c for c in ("at", "change", "plan_id", "cap", "stage", "billing_unit", "lowest_unit_price",
                             "reason", "by_user") if c in history.columns]
        st.dataframe(history.select(shown).to_pandas(), hide_index=True, width="stretch")


def feedback(res: Resources) -> None:
    """The feedback read model (art. 26) and open quality issues per product (art. 17)."""
    review = res.reads.feedback_review()
    review = review.filter((pl.col("feedback_count") > 0) | (pl.col("open_issues") > 0))
    if review.is_empty():
        st.info("No feedback yet.")
        return
    effects = [c for c in review.columns if c.startswith("effect_")]
    st.dataframe(review.select(
        pl.col("name").alias("product"), pl.col("rating_avg").round(2).alias("avg rating"),
        pl.col("feedback_count").alias("ratings"), pl.col("quality_rating_avg").round(2).alias("avg quality"),
        *effects, "open_issues", "overdue_issues", "next_deadline",
    ).sort("product").to_pandas(), hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Effect**")
        st.bar_chart(review.select([pl.col(c).sum().alias(c.removeprefix("effect_")) for c in effects])
                     .unpivot(variable_name="effect", value_name="len").to_pandas(), x="effect", y="len")
    with c2:
        st.markdown("**Ratings over time**")
        over_time = res.reads.ratings_over_time()
        if not over_time.is_empty():
            st.line_chart(over_time.group_by("month").agg(pl.col("rating_mean").mean().alias("rating"))
                          .sort("month").to_pandas(), x="month", y="rating")


def incentives(res: Resources, actor: Actor, read_only: bool = False) -> None:
    """Contribution scores (art. 25): published evaluations, the scores the read models compute now, and
    (operator admin) publishing one of them."""
    published = res.reads.published_contributions()
    if published.is_empty():
        st.info("No contribution evaluation published yet.")
    else:
        st.markdown("**Published evaluations**")
        st.dataframe(published.with_columns(pl.format("{} × {}", "value", "weight").alias("value × weight"))
                     .pivot(on="component", index=["provider_name", "period", "score", "version"],
                            values="value × weight")
                     .rename({"provider_name": "provider", "version": "revisions"}).to_pandas(),
                     hide_index=True, width="stretch")
    computed = res.reads.contributions()
    if not computed.is_empty():
        st.markdown("**Computed from the read models (per quarter)**")
        shown = [c for c in ("provider_name", "period", "score", "published_score", "issues_verified",
                             "issues_overdue", "rectified", "subscriptions", "queries", "revenue")
                 if c in computed.columns]
        st.dataframe(computed.select(shown).to_pandas(), hide_index=True, width="stretch")
        if not read_only and can(actor, "incentives.publish"):
            publish_contribution(res, actor, computed)


def publish_contribution(res: Resources, actor: Actor, computed: pl.DataFrame) -> None:
    """Publish (or revise, with a reason) a provider's score for a period, starting from the computed components.

    The components come from the contributions read model, each with its weight and the
    sentence that explains it; the operator admin may adjust them before publishing. The
    evaluation (weights summing to 1, values 0..100, one per provider and period) is the
    domain's to check.
    """
    rows = computed.to_dicts()
    names = [c.removesuffix("_weight") for c in computed.columns if c.endswith("_weight")]

    def label(i: int) -> str:
        r = rows[i]
        state = "no evaluation yet" if r.get("published_score") is None else f"published {r['published_score']:.1f}"
        return f"{r['provider_name'] or r['provider_id']} · {r['period']} · computed {r['score']:.1f} · {state}"

    st.markdown("**Publish a contribution evaluation** (operator admin)")
    row = rows[pick("Provider and period", len(rows), label, key="ce_row")]
    published = row.get("published_score") is not None
    components = pd.DataFrame([{"name": n, "value": round(float(row.get(n) or 0.0), 2),
                                "weight": row.get(f"{n}_weight"), "explanation": row.get(f"{n}_explanation") or ""}
                               for n in names], columns=["name", "value", "weight", "explanation"])
    with st.form("publish_evaluation"):
        edited = st.data_editor(components, num_rows="dynamic", hide_index=True,
                                key=f"ce_components_{row['provider_id']}_{row['period']}", column_config={
                                    "value": st.column_config.NumberColumn("Value (0-100)"),
                                    "weight": st.column_config.NumberColumn("Weight (weights sum to 1)"),
                                })
        reason = st.text_input("Reason (a revision of a published evaluation needs one)", key="ce_reason")
        submitted = st.form_submit_button("Revise evaluation" if published else "Publish evaluation")
    if submitted:
        parts = table_rows(edited)
        if published:
            evaluation_id = res.mp.incentives.evaluation_id(row["provider_id"], row["period"])
            command("publish_evaluation", lambda: res.mp.incentives.revise_evaluation(
                actor, evaluation_id, components=parts, reason=reason), success="Evaluation revised.")
        else:
            command("publish_evaluation", lambda: res.mp.incentives.publish_evaluation(
                actor, provider_id=row["provider_id"], period=row["period"], components=parts),
                success="Evaluation published.")


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
    if not (can(actor, "unit.suspend") or can(actor, "subscription.suspend") or can(actor, "client.revoke")):
        st.info(f"Suspension is the operator admin's; a {actor.role.value} may not suspend units or subscriptions "
                "or revoke their API credentials.")
        return
    units = res.reads.units().filter(pl.col("status").is_in(["qualified", "suspended"])).to_dicts()
    if units and can(actor, "unit.suspend"):
        with st.form("unit_suspension"):
            index = pick("Unit", len(units), lambda i: f"{units[i]['name']} ({units[i]['status']})")
            action = st.radio("Action", ["suspend", "reinstate"], horizontal=True, key="us_action")
            reason = _reason("us_reason")
            submitted = st.form_submit_button("Apply")
        if submitted:
            unit = units[index]
            act = res.mp.parties.suspend_unit if action == "suspend" else res.mp.parties.reinstate_unit
            command("unit_suspension", lambda: act(actor, UUID(unit["unit_id"]), reason=reason),
                    success=f"{unit['name']}: {action}ed.")
    subs = res.reads.subscriptions(status=["active", "suspended"]).to_dicts()
    if subs and can(actor, "subscription.suspend"):
        with st.form("subscription_suspension"):
            index = pick("Subscription", len(subs),
                         lambda i: f"{subs[i]['product_name']} · {subs[i]['unit_name']} · {subs[i]['status']}")
            action = st.radio("Action", ["suspend", "reinstate", "terminate"], horizontal=True, key="ss_action")
            reason = _reason("ss_reason")
            submitted = st.form_submit_button("Apply")
        if submitted:
            sub = subs[index]
            acts = {"suspend": res.mp.licensing.suspend_subscription,
                    "reinstate": res.mp.licensing.reinstate_subscription,
                    "terminate": res.mp.licensing.terminate_subscription}
            command("subscription_suspension", lambda: acts[action](actor, UUID(sub["subscription_id"]), reason=reason),
                    success=f"Subscription {action}d.")
    if can(actor, "client.revoke"):
        revoke_credentials(res, actor)


def revoke_credentials(res: Resources, actor: Actor) -> None:
    """Revoke a unit's API client on misuse (art. 34): its tokens stop working on their next request,
    since every API request checks the client live. Whether the actor may is the service's decision."""
    st.subheader("API credentials")
    clients = res.reads.clients(status="active")
    if not clients:
        st.caption("No unit holds active API credentials.")
        return
    unit_frame = res.reads.units()
    units = dict(zip(unit_frame["unit_id"].to_list(), unit_frame["name"].to_list(), strict=True))
    labels = [f"{units.get(c['unit_id'], '?')} · {c['label']} · {c['user_id']}" for c in clients]
    st.dataframe(pl.DataFrame([{
        "unit": units.get(c["unit_id"], "?"), "member": c["user_id"], "label": c["label"],
        "subscriptions": len(c["subscription_ids"] or []), "issued by": c["issued_by"],
        "issued": str(c["issued_at"])[:16],
    } for c in clients]).to_pandas(), hide_index=True, width="stretch")
    with st.form("revoke_api_client"):
        st.markdown("**Revoke API credentials** (misuse, art. 34: its tokens stop working on their next request)")
        index = pick("API client", len(clients), lambda i: labels[i], key="rk_client")
        reason = _reason("rk_reason")
        submitted = st.form_submit_button("Revoke credentials")
    if submitted:
        client = clients[index]
        command("revoke_api_client", lambda: res.mp.credentials.revoke_client(
            actor, client["client_id"], reason=reason),
            success=f"Credentials {client['label']!r} of {units.get(client['unit_id'], '?')} revoked.")


__all__ = ["DataProduct", "render"]
