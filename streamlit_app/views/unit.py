"""Unit portal (applicant, unit admin, unit analyst).

Register the unit and its members; file a demand application with every art. 21 field;
follow its review; sign the service and confidentiality agreements (art. 22); see
subscriptions with remaining quota and privacy budget and usage; issue and revoke API
credentials (art. 23) and launch a workspace; give feedback (art. 26); report a quality
issue (art. 11, 17). Every check is the services'; the page shows their messages.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from typing import Any
from uuid import UUID

import polars as pl
import streamlit as st

from domain.identity import Actor, Role
from domain.licensing import AgreementKind, business_date
from streamlit_app.ui.auth import Session
from streamlit_app.ui.context import Resources, can, command, pick, pick_many

PURPOSES = ["industry", "commercial", "public_welfare", "public_governance"]


def render(res: Resources, session: Session) -> None:
    st.title("Unit portal")
    actor = session.actor
    if actor is None:
        st.info("Sign in to use the unit portal.")
        return
    if actor.role is Role.APPLICANT or actor.unit_id is None:
        if can(actor, "unit.register"):
            register_unit(res, actor)
        return
    unit = res.reads.unit(actor.unit_id)
    if unit is None:
        st.info("Your unit is not in the read model yet; reload in a moment.")
        return
    st.caption(f"{unit['name']} · credit code {unit['credit_code']} · **{unit['status']}**"
               + (f" — {unit['status_reason']}" if unit["status_reason"] else ""))
    tabs = st.tabs(["Apply", "Applications", "Subscriptions", "Credentials & workspace", "Feedback & quality",
                    "Members"])
    with tabs[0]:
        apply_form(res, actor)
    with tabs[1]:
        applications(res, actor)
    with tabs[2]:
        subscriptions(res, actor)
    with tabs[3]:
        credentials(res, actor)
    with tabs[4]:
        feedback_and_quality(res, actor)
    with tabs[5]:
        members(res, actor, unit)


def register_unit(res: Resources, actor: Actor) -> None:
    st.subheader("Register your unit")
    st.caption("You become its first unit admin; the operator reviews its qualification (art. 22).")
    with st.form("register_unit"):
        name = st.text_input("Unit name", key="ru_name")
        code = st.text_input("Unified social credit code (18 characters)", key="ru_code")
        kind = st.selectbox("Kind", ["company", "research_institute", "ngo", "public_institution"], key="ru_kind")
        email = st.text_input("Contact e-mail", key="ru_email")
        submitted = st.form_submit_button("Register")
    if submitted:
        command("register_unit", lambda: res.mp.parties.register_unit(
            actor, name=name, credit_code=code, kind=kind, contact_email=email),
            success="Unit registered; awaiting qualification review. Choose it under “Act as” to continue.")


def apply_form(res: Resources, actor: Actor) -> None:
    st.subheader("File a demand application (art. 21)")
    if not can(actor, "demand.file"):
        st.caption(f"A {actor.role.value} may not file demand applications.")
        return
    catalog = res.reads.catalog()
    ids = catalog["product_id"].to_list()
    names = dict(zip(ids, catalog["name"].to_list(), strict=True))
    chosen = st.multiselect("Products (scope)", ids, format_func=lambda i: names[i], key="da_products")
    today = business_date(res.mp.demand.clock())
    with st.form("file_application"):
        scope = []
        for pid in chosen:
            field_names = res.reads.data_dictionary(pid)["field"].to_list()
            fields = st.multiselect(f"Fields of {names[pid]}", field_names, default=field_names,
                                    key=f"da_fields_{pid}")
            scope.append({"product_id": pid, "fields": fields})
        scenario = st.text_area("Application scenario", key="da_scenario",
                                help="What you will do with the data, and for whom.")
        purpose = st.text_input("Purpose", key="da_purpose")
        purpose_class = st.selectbox("Purpose class", PURPOSES, key="da_class",
                                     help="Public welfare and public governance use is free of charge (art. 24).")
        c1, c2 = st.columns(2)
        start = c1.date_input("Period start", today, key="da_start")
        end = c2.date_input("Period end", today + timedelta(days=365), key="da_end")
        controls = st.text_area("Security controls (one per line)", key="da_controls")
        submitted = st.form_submit_button("File application", type="primary")
    if submitted:
        command("file_application", lambda: res.mp.demand.file_application(
            actor, unit_id=str(actor.unit_id), scenario=scenario, purpose=purpose, purpose_class=purpose_class,
            scope=scope, period_start=start, period_end=end,
            security_controls=[c.strip() for c in controls.splitlines() if c.strip()]),
            success="Application filed; the operator will assess its risk and decide.")


def applications(res: Resources, actor: Actor) -> None:
    apps = res.reads.applications(unit_id=actor.unit_id)
    if not apps:
        st.info("No application yet.")
        return
    names = res.reads.product_names()
    st.dataframe(pl.DataFrame([{
        "filed": str(a["filed_on"]), "products": ", ".join(names.get(i, "?") for i in a["product_ids"]),
        "purpose class": a["purpose_class"], "status": a["status"],
        "risk": a["risk_level"] or "—", "decision": a["decision_reason"] or "—",
        "id": a["application_id"],
    } for a in apps]).to_pandas(), hide_index=True, width="stretch")
    open_apps = [a for a in apps if a["status"] in ("submitted", "under_review")]
    if open_apps and can(actor, "demand.file"):
        with st.form("withdraw"):
            index = pick("Withdraw an application", len(open_apps),
                         lambda i: f"{open_apps[i]['filed_on']} {open_apps[i]['purpose']}")
            reason = st.text_input("Reason", key="wd_reason")
            submitted = st.form_submit_button("Withdraw")
        if submitted:
            chosen = open_apps[index]
            command("withdraw", lambda: res.mp.demand.withdraw(actor, chosen["application_id"], reason=reason),
                    success="Application withdrawn.")


def _sub_label(s: dict[str, Any]) -> str:
    return f"{s['product_name']} · {s['status']} · until {s['term_end']}"


def subscriptions(res: Resources, actor: Actor) -> None:
    subs = res.reads.subscriptions(unit_id=actor.unit_id)
    if subs.is_empty():
        st.info("No subscription yet: the operator creates one when your application is approved.")
        return
    for s in subs.iter_rows(named=True):
        sid = s["subscription_id"]
        with st.container(border=True):
            st.markdown(f"**{_sub_label(s)}** — plan `{s['plan_id']}`, purpose {s['purpose_class']}")
            if s["status_reason"]:
                st.caption(s["status_reason"])
            for kind in AgreementKind:
                by_unit, by_operator = s[f"{kind.value}_unit"], s[f"{kind.value}_operator"]
                st.markdown(f"- {kind.value} agreement: unit {by_unit or '✗ not signed'}, "
                            f"operator {by_operator or '✗ not signed'}")
                if (not by_unit and can(actor, "subscription.sign_unit") and s["status"] == "pending"
                        and st.button(f"Sign the {kind.value} agreement", key=f"sign_{sid}_{kind.value}")):
                        command(f"sign_{sid}", lambda k=kind, sid=sid: res.mp.licensing.sign_agreement(  # type: ignore[misc]
                            actor, UUID(sid), kind=k), success=f"{kind.value} agreement signed.")
            if s["status"] == "active":
                c1, c2, c3 = st.columns(3)
                c1.metric("Queries left this month", s["queries_remaining"])
                c2.metric("Rows left", s["rows_remaining"])
                c3.metric("Privacy budget left (ε)", f"{s['budget_remaining']:g}")
                st.caption(f"Resets on {s['reset_on']} · term ends in {s['days_to_expiry']} days")
    usage = res.reads.usage_periods(unit_id=actor.unit_id)
    if not usage.is_empty():
        st.subheader("Usage per month")
        st.bar_chart(usage.group_by("period").agg(pl.col("queries_used").sum().alias("queries"),
                                                  pl.col("refusals").sum())
                     .sort("period").to_pandas(), x="period", y=["queries", "refusals"])
    daily = res.reads.usage_daily(unit_id=actor.unit_id)
    if not daily.is_empty():
        st.subheader("Usage per day")
        st.line_chart(daily.group_by("day").agg(pl.col("queries").sum(), pl.col("refusals").sum())
                      .sort("day").to_pandas(), x="day", y=["queries", "refusals"])


def credentials(res: Resources, actor: Actor) -> None:
    st.subheader("API and notebook credentials (art. 23: bound to your unit)")
    clients = res.reads.clients(actor.unit_id) if actor.unit_id else []
    if clients:
        st.dataframe(pl.DataFrame([{"client id": c["client_id"], "label": c["label"], "member": c["user_id"],
                                    "status": c["status"], "subscriptions": len(c["subscription_ids"])}
                                   for c in clients]).to_pandas(), hide_index=True, width="stretch")
    subs = res.reads.subscriptions(unit_id=actor.unit_id, status="active").to_dicts()
    if can(actor, "client.issue"):
        members = sorted(res.reads.unit_members(actor.unit_id)["user_id"].to_list())  # type: ignore[arg-type]
        with st.form("issue_client"):
            label = st.text_input("Label", key="ic_label", placeholder="analysis notebook")
            member = st.selectbox("For member", members, key="ic_member")
            chosen = pick_many("Subscriptions", len(subs), lambda i: _sub_label(subs[i]), key="ic_subs")
            submitted = st.form_submit_button("Issue credentials")
        if submitted:
            command("issue_client", lambda: _issue(res, actor, label, member,
                                                   [UUID(subs[i]["subscription_id"]) for i in chosen]),
                    success="Credentials issued.")
        active = [c for c in clients if c["status"] == "active"]
        if active and can(actor, "client.revoke"):
            with st.form("revoke_client"):
                index = pick("Revoke", len(active), lambda i: active[i]["label"])
                reason = st.text_input("Reason", key="rc_reason")
                submitted = st.form_submit_button("Revoke")
            if submitted:
                chosen_client = active[index]
                command("revoke_client", lambda: res.mp.credentials.revoke_client(
                    actor, chosen_client["client_id"], reason=reason), success="Credentials revoked.")
    else:
        st.caption("Your unit admin issues credentials.")
    st.subheader("Workspace")
    launch = f"shuyun workspace launch --unit {actor.unit_id}"
    if shutil.which("shuyun") and st.button("Launch workspace", key="launch_ws"):
        st.info(f"Run `{launch}` on the platform host to start your JupyterLab workspace.")
    st.code(launch, language="bash")


def _issue(res: Resources, actor: Actor, label: str, member: str, subscription_ids: list[UUID]) -> object:
    issued = res.mp.credentials.issue_client(actor, unit_id=str(actor.unit_id), user_id=member, label=label,
                                             subscription_ids=subscription_ids)
    st.session_state.setdefault("_flash", []).append(
        f"Client id `{issued.client_id}` — secret `{issued.client_secret}` (shown once: store it now).")
    return issued


def feedback_and_quality(res: Resources, actor: Actor) -> None:
    subs = res.reads.subscriptions(unit_id=actor.unit_id, status="active").to_dicts()
    st.subheader("Give feedback (art. 26)")
    if not subs:
        st.info("Feedback is given on an active subscription.")
    elif can(actor, "feedback.give"):
        with st.form("give_feedback"):
            index = pick("Subscription", len(subs), lambda i: _sub_label(subs[i]),
                                 key="fb_sub")
            rating = st.slider("Overall rating", 1, 5, 4, key="fb_rating")
            quality = st.slider("Data quality", 1, 5, 4, key="fb_quality")
            status = st.selectbox("Application status", ["planned", "in_development", "in_production",
                                                         "discontinued"], key="fb_status")
            effect = st.selectbox("Effect", ["none", "minor", "significant", "transformative"], key="fb_effect")
            note = st.text_input("Effect note", key="fb_note")
            text = st.text_area("Comment", key="fb_text")
            submitted = st.form_submit_button("Send feedback")
        if submitted:
            chosen = subs[index]
            command("give_feedback", lambda: res.mp.feedback.give_feedback(
                actor, subscription_id=UUID(chosen["subscription_id"]), quality_rating=quality,
                application_status=status, effect=effect,
                effect_note=note, rating=rating, text=text), success="Thank you: feedback recorded.")
    st.subheader("Report a quality issue (art. 11, 17)")
    product_ids = set(res.reads.subscriptions(unit_id=actor.unit_id)["product_id"].to_list())
    resource_ids = {rid for pid in sorted(product_ids)
                    for rid in ((res.reads.product(pid) or {}).get("source_ids") or [])}
    resources = res.reads.resources().filter(pl.col("resource_id").is_in(sorted(resource_ids))) \
        .sort("resource_id").to_dicts()
    if not resources:
        st.info("You can report issues on the sources of products you subscribe to.")
        return
    if not can(actor, "quality.report"):
        return
    with st.form("report_issue"):
        index = pick("Catalog resource", len(resources), lambda i: resources[i]["name"],
                             key="qi_resource")
        dimension = st.selectbox("Dimension", ["completeness", "consistency", "accuracy", "timeliness"],
                                 key="qi_dimension")
        description = st.text_area("What is wrong", key="qi_description")
        evidence = st.text_area("Evidence", key="qi_evidence")
        submitted = st.form_submit_button("Report")
    if submitted:
        chosen_resource = resources[index]
        command("report_issue", lambda: res.mp.quality.report_issue(
            actor, resource_id=UUID(chosen_resource["resource_id"]), dimension=dimension, description=description,
            evidence=evidence),
            success="Issue reported; the operator will verify it.")


def members(res: Resources, actor: Actor, unit: dict[str, Any]) -> None:
    st.dataframe(res.reads.unit_members(unit["unit_id"]).select(pl.col("user_id").alias("user"), "role", "since")
                 .to_pandas(), hide_index=True)
    if not can(actor, "unit.manage_members"):
        return
    with st.form("add_member"):
        user = st.text_input("User id", key="am_user")
        role = st.selectbox("Role", ["unit_analyst", "unit_admin"], key="am_role")
        submitted = st.form_submit_button("Add member")
    if submitted:
        command("add_member", lambda: res.mp.parties.add_member(actor, UUID(unit["unit_id"]), user_id=user, role=role),
                success=f"{user} added.")
