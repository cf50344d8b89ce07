"""The policy page (art. 7: policy publicity): the Baotou measures in short, in plain words."""

from __future__ import annotations

import streamlit as st

from streamlit_app.ui.auth import Session
from streamlit_app.ui.context import Resources

MEASURES: tuple[tuple[str, str], ...] = (
    ("Art. 3, 5, 10 — Public data and its catalogue",
     "Data collected by government bodies and public service organisations (water, power, gas, public transport, "
     "health …). Each provider compiles its catalogue; the city's big-data bureau reviews every entry."),
    ("Art. 7, 8 — One platform",
     "All operation happens on this platform: supply and demand matching, showcases, policy publicity, a data "
     "sandbox, identity, access control and a complete, traceable audit trail."),
    ("Art. 11, 17 — Quality",
     "Anyone using data may report a quality problem; the operator verifies it and the provider rectifies it "
     "within a deadline."),
    ("Art. 12 — Grades",
     "Every catalogue entry carries a security grade; a product takes the highest grade of its sources and the "
     "sandbox policy that goes with it."),
    ("Art. 14 — Consent to supply",
     "A provider consents before its data feeds a product."),
    ("Art. 21 — Demand applications",
     "An application unit states purpose, scenario, scope (products and fields), period and security controls."),
    ("Art. 22 — Review and agreements",
     "Units are qualified; applications are risk-assessed and decided by someone other than the filer; a product "
     "is compliance-reviewed by someone other than its builder; both the service agreement and the "
     "confidentiality agreement are signed by both sides before use. No product may let raw data be restored."),
    ("Art. 23 — Use as agreed",
     "Data is used only within the agreed scope and never passed on to a third party; credentials are bound to "
     "the unit and its subscriptions; results carry a watermark."),
    ("Art. 24 — Prices",
     "No trading of raw data. Prices stay under a cap set with the price authority; use for public welfare and "
     "public governance is free of charge. Trial prices first, formal prices after a year."),
    ("Art. 25, 26 — Incentives and feedback",
     "Providers' contributions are evaluated (quality, use, value); units report quality, application status and "
     "effect of the data they use."),
    ("Art. 28-38 — Supervision",
     "The bureau supervises; misuse, resale or leaks lead to suspension or termination of a unit or a "
     "subscription. Records are kept at least 20 years."),
)


def render(res: Resources, session: Session) -> None:
    st.title("Policy — the Baotou public data operation measures (2023) in short")
    st.caption("包头市公共数据运营管理办法（试行）: what they mean for you on this platform.")
    for title, text in MEASURES:
        with st.expander(title, expanded=False):
            st.write(text)
