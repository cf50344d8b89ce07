"""Shuyun (数运): the storefront, portals and consoles in one Streamlit app.

``streamlit run streamlit_app/Home.py`` (``shuyun up`` does it). Each person sees the
pages their role allows; the pages read the read side and send commands through the
application services, which decide every rule.
"""

from __future__ import annotations

import streamlit as st

from domain.identity import Role
from streamlit_app.ui.auth import Session, sign_in_panel
from streamlit_app.ui.context import resources, show_flash
from streamlit_app.views import demand_board, operator, policy, provider, storefront, supervisor, unit

UNIT_PORTAL = {Role.APPLICANT, Role.UNIT_ADMIN, Role.UNIT_ANALYST}
OPERATOR = {Role.PRODUCT_MANAGER, Role.COMPLIANCE_REVIEWER, Role.OPERATOR_ADMIN}


def pages_for(session: Session) -> dict[str, object]:
    """Page title -> module with ``render(res, session)``; what the acting role may see."""
    pages: dict[str, object] = {
        "Storefront": storefront, "Demand board": demand_board, "Policy": policy,
    }
    role = session.role
    if role in UNIT_PORTAL:
        pages["Unit portal"] = unit
    if role is Role.PROVIDER_STAFF:
        pages["Provider portal"] = provider
    if role in OPERATOR:
        pages["Operator console"] = operator
    if role is Role.SUPERVISOR:
        pages["Supervisor"] = supervisor
    return pages


def main() -> None:
    st.set_page_config(page_title="Shuyun 数运 — Baotou public data", page_icon="🏙️", layout="wide")
    res = resources()
    session = sign_in_panel(res)
    pages = pages_for(session)
    titles = list(pages)
    wanted = st.query_params.get("page")
    if st.session_state.get("nav") not in titles:
        st.session_state["nav"] = wanted if wanted in titles else titles[0]
    with st.sidebar:
        choice = st.radio("Go to", titles, key="nav")
    st.query_params["page"] = choice
    show_flash()
    pages[choice].render(res, session)  # type: ignore[attr-defined]


main()
