"""The demand board (art. 19-20): needs no product meets yet, posted by units, answered by the operator."""

from __future__ import annotations

import polars as pl
import streamlit as st

from streamlit_app.ui.auth import Session
from streamlit_app.ui.context import Resources, can, command, pick


def render(res: Resources, session: Session) -> None:
    st.title("Demand board")
    st.caption("Units post data needs that no product meets yet; other units second them; the operator answers.")
    actor = session.actor
    posts = res.reads.posts()
    if posts:
        st.dataframe(pl.DataFrame([{
            "title": p["title"], "data wanted": p["data_wanted"], "purpose": p["purpose_class"],
            "interest (units)": p["interest"], "status": p["status"],
            "answer": "; ".join(r["text"] for r in p["responses"]),
        } for p in posts]).to_pandas(), hide_index=True, width="stretch")
    else:
        st.info("No needs posted yet.")
    if actor is not None and can(actor, "demand.post"):
        with st.form("post_demand"):
            st.subheader("Post a need")
            title = st.text_input("Title")
            description = st.text_area("Description")
            wanted = st.text_input("Data wanted")
            purpose = st.selectbox("Purpose class", ["industry", "commercial", "public_welfare", "public_governance"])
            submitted = st.form_submit_button("Post")
        if submitted:
            command("post_demand", lambda: res.mp.demand.post_demand(
                actor, unit_id=str(actor.unit_id), title=title, description=description, data_wanted=wanted,
                purpose_class=purpose), success="Your need is on the board.")
    if actor is not None and can(actor, "demand.respond") and posts:
        with st.form("respond_post"):
            st.subheader("Answer a need")
            index = pick("Need", len(posts), lambda i: posts[i]["title"])
            text = st.text_area("Answer")
            submitted = st.form_submit_button("Answer")
        if submitted:
            post = posts[index]
            command("respond_post", lambda: res.mp.demand.respond_to_post(actor, post["post_id"], text=text),
                    success="Answer published.")
