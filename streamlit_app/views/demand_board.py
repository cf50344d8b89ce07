"""The demand board (art. 19-20): needs no product meets yet, posted by units, seconded by other units
("we need that too"), answered by the operator, and closed by the posting unit or the operator."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from domain.identity import Actor
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
            "closed because": p["close_reason"] or "",
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
    if actor is not None and can(actor, "demand.post") and actor.unit_id is not None:
        second(res, actor, posts)
    if actor is not None and can(actor, "demand.close_post"):
        close(res, actor, posts)
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


def second(res: Resources, actor: Actor, posts: list[dict[str, Any]]) -> None:
    """A member of another unit says "we need that too": interest is what the operator ranks needs by.

    Offered on the open needs of other units; that a unit seconds a need once is the
    post's rule, so a need the unit has seconded already is marked, and refused if sent.
    """
    mine = str(actor.unit_id)
    others = [p for p in posts if p["status"] != "closed" and p["unit_id"] != mine]
    if not others:
        return

    def label(i: int) -> str:
        p = others[i]
        seconded = " · your unit seconded it" if mine in (p["seconded_by"] or []) else ""
        return f"{p['title']} · {p['unit_name'] or '?'} · interest {p['interest']}{seconded}"

    with st.form("second_post"):
        st.subheader("We need that too")
        index = pick("Need to second", len(others), label, key="sp_post")
        submitted = st.form_submit_button("Second this need")
    if submitted:
        post = others[index]
        command("second_post", lambda: res.mp.demand.second_post(actor, post["post_id"]),
                success=f"Seconded: {post['title']}.")


def close(res: Resources, actor: Actor, posts: list[dict[str, Any]]) -> None:
    """The posting unit closes its own need (met, or no longer needed), with a reason; the operator may
    close any. Which post a person may close is the service's decision; the form offers the plausible ones."""
    open_posts = [p for p in posts if p["status"] != "closed"
                  and (not actor.role.is_unit or p["unit_id"] == str(actor.unit_id))]
    if not open_posts:
        return
    with st.form("close_post"):
        st.subheader("Close a need")
        index = pick("Need to close", len(open_posts),
                     lambda i: f"{open_posts[i]['title']} · {open_posts[i]['unit_name'] or '?'}", key="cp_post")
        reason = st.text_input("Why it is closed", key="cp_reason")
        submitted = st.form_submit_button("Close the need")
    if submitted:
        post = open_posts[index]
        command("close_post", lambda: res.mp.demand.close_post(actor, post["post_id"], reason=reason),
                success=f"Closed: {post['title']}.")
