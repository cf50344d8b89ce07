"""Provider portal (provider staff): its catalogue entries and versions, consent requests (art. 14),
quality issues to rectify (or, with a reason, refuse to) by their deadlines (art. 11, 17), and its
contribution score explained (art. 25)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import polars as pl
import streamlit as st

from domain.identity import Actor
from streamlit_app.ui.auth import Session
from streamlit_app.ui.context import Resources, can, command, pick


def render(res: Resources, session: Session) -> None:
    actor = session.actor
    if actor is None or actor.provider_id is None:
        st.info("Sign in as provider staff.")
        return
    provider_id = str(actor.provider_id)
    name = res.reads.provider_names().get(provider_id, "?")
    st.title(f"Provider portal — {name}")
    tabs = st.tabs(["Catalogue", "Consent requests", "Quality issues", "Contribution score"])
    resources = res.reads.resources(provider_id)
    with tabs[0]:
        if resources.is_empty():
            st.info("No catalogue entry yet.")
        for r in resources.iter_rows(named=True):
            with st.expander(f"{r['name']} · {r['grade']} · {r['openness']} · {r['status']}"):
                st.write(r["description"])
                versions = res.reads.resource_versions(r["resource_id"])
                st.dataframe(versions.select(
                    pl.col("number").alias("version"), pl.col("row_count").alias("rows"),
                    pl.col("content_hash").str.slice(0, 16).alias("hash"),
                    pl.col("at").cast(pl.String).str.slice(0, 19).alias("registered")).to_pandas(), hide_index=True)
                if r["review_reason"]:
                    st.caption(f"Bureau review: {r['review_reason']}")
    with tabs[1]:
        supply = res.reads.supply(provider_id)
        pending = supply.filter(pl.col("status") == "pending").to_dicts()
        decided = supply.filter(pl.col("status") != "pending")
        st.subheader(f"Waiting for your answer ({len(pending)})")
        if pending and can(actor, "catalog.consent"):
            labels = [f"{p['resource_name']} → {p['product_name'] or p['product_id']}" for p in pending]
            with st.form("decide_supply"):
                index = pick("Request", len(pending), lambda i: labels[i])
                decision = st.radio("Answer", ["consent", "refuse"], horizontal=True, key="ds_decision")
                reason = st.text_input("Reason", key="ds_reason")
                submitted = st.form_submit_button("Answer")
            if submitted:
                req = pending[index]
                command("decide_supply", lambda: res.mp.catalog.decide_supply(
                    actor, UUID(req["resource_id"]), product_id=UUID(req["product_id"]),
                    granted=decision == "consent", reason=reason), success="Answer recorded.")
        if not decided.is_empty():
            st.dataframe(decided.select(pl.col("resource_name").alias("resource"),
                                        pl.col("product_name").alias("product"), pl.col("status").alias("answer"),
                                        "reason").to_pandas(), hide_index=True)
    with tabs[2]:
        issues = res.reads.issues(provider_id=provider_id)
        if not issues.is_empty():
            st.dataframe(issues.select(
                pl.col("resource_name").alias("resource"), "dimension", "description", "status",
                pl.col("deadline").cast(pl.String).str.slice(0, 16).fill_null("—").alias("deadline"),
                "overdue", pl.col("refusal_reason").fill_null("").alias("refused because")).to_pandas(),
                hide_index=True, width="stretch")
        open_issues = issues.filter(pl.col("status") == "verified").to_dicts()
        if open_issues and can(actor, "quality.rectify"):
            with st.form("rectify_issue"):
                index = pick("Issue to rectify", len(open_issues), lambda i: open_issues[i]["description"])
                note = st.text_area("What was corrected", key="ri_note")
                submitted = st.form_submit_button("Report rectification")
            if submitted:
                issue = open_issues[index]
                command("rectify_issue", lambda: res.mp.quality.rectify_issue(actor, UUID(issue["issue_id"]),
                                                                              note=note),
                        success="Rectification reported.")
            refuse_rectification(res, actor, [i for i in open_issues if not i["refusal_reason"]])
        elif issues.is_empty():
            st.info("No quality issue reported on your catalogue.")
    with tabs[3]:
        published = res.reads.published_contributions(provider_id)
        if published.is_empty():
            st.info("No contribution evaluation published yet.")
        for period in sorted(set(published["period"].to_list()), reverse=True):
            rows = published.filter(pl.col("period") == period)
            st.metric(f"Contribution score {period}", f"{rows['score'][0]:.1f}")
            st.dataframe(rows.select(
                "component", "value", "weight", (pl.col("value") * pl.col("weight")).round(2).alias("contributes"),
                pl.col("explanation").alias("why")).to_pandas(), hide_index=True)
            st.caption("Score = Σ value × weight (art. 25: data quality, application and value realised).")


def refuse_rectification(res: Resources, actor: Actor, issues: list[dict[str, Any]]) -> None:
    """The provider says, with a reason, that it will not rectify a verified issue (art. 17).

    The workflow's own step (``QualityIssue.refuse``): refusing does not make a verified
    error right, so the issue stays open, counts as overdue from now on, and can still be
    rectified later. Refused once only, so issues refused already are not offered again.
    """
    if not issues:
        return
    with st.form("refuse_rectification"):
        st.markdown("**Refuse rectification** — the issue stays open and counts as overdue (art. 17)")
        index = pick("Issue", len(issues), lambda i: f"{issues[i]['resource_name'] or '?'} · "
                                                     f"{issues[i]['description']}", key="rf_issue")
        reason = st.text_area("Why it will not be rectified", key="rf_reason")
        submitted = st.form_submit_button("Refuse rectification")
    if submitted:
        issue = issues[index]
        command("refuse_rectification", lambda: res.mp.quality.refuse_rectification(
            actor, UUID(issue["issue_id"]), reason=reason),
            success="Refusal recorded; the issue stays open and counts as overdue.")
