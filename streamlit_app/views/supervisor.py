"""Supervisor view (the city's big-data bureau): read-only dashboards, plus catalogue entry review,
which the measures give to the bureau (art. 5, 10)."""

from __future__ import annotations

from uuid import UUID

import polars as pl
import streamlit as st

from streamlit_app.ui.auth import Session
from streamlit_app.ui.context import Resources, can, command, pick
from streamlit_app.views import operator


def render(res: Resources, session: Session) -> None:
    actor = session.actor
    if actor is None:
        st.info("Sign in as the bureau.")
        return
    operator.render(res, session, read_only=True)
    if can(actor, "expert.opine"):
        operator.expert_opinions(res, actor)
    if not can(actor, "catalog.review"):
        return
    st.header("Catalogue entries to review (art. 10)")
    pending = res.reads.resources(status="submitted").to_dicts()
    if not pending:
        st.info("No catalogue entry waiting for review.")
        return
    st.dataframe(pl.DataFrame([{"entry": r["name"], "provider": r["provider_name"] or "?", "grade": r["grade"],
                                "openness": r["openness"]} for r in pending]).to_pandas(), hide_index=True)
    with st.form("review_resource"):
        index = pick("Entry", len(pending), lambda i: pending[i]["name"])
        decision = st.radio("Decision", ["approve", "reject"], horizontal=True, key="rr_decision")
        reason = st.text_input("Reason", key="rr_reason")
        submitted = st.form_submit_button("Record review")
    if submitted:
        entry = pending[index]
        command("review_resource", lambda: res.mp.catalog.review_resource(
            actor, UUID(entry["resource_id"]), approved=decision == "approve", reason=reason),
            success="Review recorded.")
