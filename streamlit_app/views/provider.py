"""Provider portal (provider staff): its catalogue entries and versions, consent requests (art. 14),
quality issues to rectify with deadlines (art. 11, 17), and its contribution score explained (art. 25)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import streamlit as st

from domain.catalog import Provider
from streamlit_app.ui.auth import Session
from streamlit_app.ui.context import Resources, command, pick


def render(res: Resources, session: Session) -> None:
    actor = session.actor
    if actor is None or actor.provider_id is None:
        st.info("Sign in as provider staff.")
        return
    provider = res.reads.one(Provider, actor.provider_id)
    st.title(f"Provider portal — {provider.name}")
    tabs = st.tabs(["Catalogue", "Consent requests", "Quality issues", "Contribution score"])
    resources = res.reads.resources(provider.id)
    products = {p.id: p.name for p in res.reads.products()}
    with tabs[0]:
        if not resources:
            st.info("No catalogue entry yet.")
        for r in resources:
            with st.expander(f"{r.name} · {r.grade.value} · {r.openness.value} · {r.status.value}"):
                st.write(r.description)
                st.dataframe(pl.DataFrame([{"version": v.number, "rows": v.row_count, "hash": v.content_hash[:16],
                                            "registered": str(v.registered_at)[:19]} for v in r.versions],
                                          schema={"version": pl.Int64, "rows": pl.Int64, "hash": pl.String,
                                                  "registered": pl.String}).to_pandas(), hide_index=True)
                if r.review_reason:
                    st.caption(f"Bureau review: {r.review_reason}")
    with tabs[1]:
        pending = [(r, key, req) for r in resources for key, req in r.supply.items()
                   if req.status.value == "pending"]
        decided = [(r, req) for r in resources for req in r.supply.values() if req.status.value != "pending"]
        st.subheader(f"Waiting for your answer ({len(pending)})")
        if pending:
            labels = [f"{r.name} → {products.get(req.product_id, req.product_id)}" for r, _, req in pending]
            with st.form("decide_supply"):
                index = pick("Request", len(pending), lambda i: labels[i])
                decision = st.radio("Answer", ["consent", "refuse"], horizontal=True, key="ds_decision")
                reason = st.text_input("Reason", key="ds_reason")
                submitted = st.form_submit_button("Answer")
            if submitted:
                resource, _, req = pending[index]
                command("decide_supply", lambda: res.mp.catalog.decide_supply(
                    actor, resource.id, product_id=req.product_id, granted=decision == "consent", reason=reason),
                    success="Answer recorded.")
        if decided:
            st.dataframe(pl.DataFrame([{"resource": r.name, "product": products.get(req.product_id, "?"),
                                        "answer": req.status.value, "reason": req.reason} for r, req in decided])
                         .to_pandas(), hide_index=True)
    with tabs[2]:
        issues = res.reads.issues(provider_id=provider.id)
        names = {r.id: r.name for r in resources}
        if issues:
            now = datetime.now(UTC)
            st.dataframe(pl.DataFrame([{
                "resource": names.get(i.resource_id, "?"), "dimension": i.dimension.value,
                "description": i.description, "status": i.status.value,
                "deadline": str(i.deadline)[:16] if i.deadline else "—",
                "overdue": bool(i.deadline and i.status.value == "verified" and i.deadline < now),
            } for i in issues]).to_pandas(), hide_index=True, width="stretch")
        open_issues = [i for i in issues if i.status.value == "verified"]
        if open_issues:
            with st.form("rectify_issue"):
                index = pick("Issue to rectify", len(open_issues), lambda i: open_issues[i].description)
                note = st.text_area("What was corrected", key="ri_note")
                submitted = st.form_submit_button("Report rectification")
            if submitted:
                issue = open_issues[index]
                command("rectify_issue", lambda: res.mp.quality.rectify_issue(actor, issue.id, note=note),
                        success="Rectification reported.")
        elif not issues:
            st.info("No quality issue reported on your catalogue.")
    with tabs[3]:
        evaluations = res.reads.evaluations(provider.id)
        if not evaluations:
            st.info("No contribution evaluation published yet.")
        for e in sorted(evaluations, key=lambda e: e.period, reverse=True):
            st.metric(f"Contribution score {e.period}", f"{e.score:.1f}")
            st.dataframe(pl.DataFrame([{"component": c.name, "value": c.value, "weight": c.weight,
                                        "contributes": round(c.value * c.weight, 2), "why": c.explanation}
                                       for c in e.components]).to_pandas(), hide_index=True)
            st.caption("Score = Σ value × weight (art. 25: data quality, application and value realised).")
