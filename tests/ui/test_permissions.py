"""AppTest: every form and command button is offered only to roles that hold its permission (art. 15-16, 22).

The pages ask ``streamlit_app.ui.context.can``, which asks ``marketplace.access`` — one
permission table for the services and the pages. These tests walk every page as every
kind of persona the demo records and check each form on it against that table; a form
missing from ``FORM_PERMISSIONS`` fails the walk, so a new form cannot skip the audit.
"""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from domain.errors import PermissionDenied
from domain.identity import Actor, Role
from marketplace import access
from streamlit_app.ui.context import can
from tests.ui.helpers import errors, forms, open_page, pages, sign_in, sign_in_new

#: Every form of the app -> the permission its service call requires.
FORM_PERMISSIONS: dict[str, str] = {
    # unit portal
    "register_unit": "unit.register", "file_application": "demand.file", "withdraw": "demand.file",
    "issue_client": "client.issue", "revoke_client": "client.revoke", "give_feedback": "feedback.give",
    "report_issue": "quality.report", "add_member": "unit.manage_members",
    # demand board
    "post_demand": "demand.post", "respond_post": "demand.respond", "second_post": "demand.post",
    "close_post": "demand.close_post",
    # provider portal
    "decide_supply": "catalog.consent", "rectify_issue": "quality.rectify", "refuse_rectification": "quality.rectify",
    # operator console: review queues
    "qualify_unit": "unit.qualify", "assess_risk": "demand.assess", "decide_application": "demand.decide",
    "expert_opinion_application": "expert.opine", "expert_opinion_product": "expert.opine",
    "create_subscription": "subscription.create", "review_compliance": "product.review",
    "verify_issue": "quality.verify", "reject_issue": "quality.verify", "close_issue": "quality.verify",
    "extend_deadline": "quality.extend",
    # operator console: products and pricing, incentives, suspension
    "set_cap": "product.set_cap", "set_plan": "product.price", "retire_plan": "product.price",
    "unlist": "product.list", "publish_evaluation": "incentives.publish",
    "unit_suspension": "unit.suspend", "subscription_suspension": "subscription.suspend",
    "revoke_api_client": "client.revoke",
    # supervisor
    "review_resource": "catalog.review",
}
#: Command buttons outside forms, by key prefix.
BUTTON_PERMISSIONS: dict[str, str] = {
    "osign_": "subscription.sign_operator", "sign_": "subscription.sign_unit", "list_product": "product.list",
    "launch_ws": "usage.use",
}
_UNIT = UUID("00000000-0000-0000-0000-000000000001")
PUBLIC = ["Storefront", "Demand board", "Policy"]
#: Who signs in ("newcomer" is someone the store does not know: an applicant; "" browses anonymously) -> pages.
PAGES: dict[str, list[str]] = {
    "": PUBLIC,
    "newcomer": [*PUBLIC, "Unit portal"],
    "admin.zhao": [*PUBLIC, "Operator console"],
    "reviewer.wang": [*PUBLIC, "Operator console"],
    "pm.li": [*PUBLIC, "Operator console"],
    "bureau.zhang": [*PUBLIC, "Supervisor"],
    "bus.clerk": [*PUBLIC, "Provider portal"],
    "mobility0.admin": [*PUBLIC, "Unit portal"],
    "mobility0.analyst": [*PUBLIC, "Unit portal"],
}


def _offered(at: AppTest) -> dict[str, set[str]]:
    """Form ids and command-button keys on every page the signed-in persona may open, by page."""
    seen: dict[str, set[str]] = {}
    for title in pages(at):
        open_page(at, title)
        assert at.title, f"{title} rendered no title"
        seen[title] = forms(at) | {b.key for b in at.main.button if b.key and not b.form_id}
    return seen


def _acting_role(at: AppTest) -> Role:
    """The role the sidebar says the person acts in ("Acting as `user (role)`")."""
    caption = next(c.value for c in at.sidebar.caption if c.value.startswith("Acting as"))
    return Role(caption.rsplit("(", 1)[1].split(")", 1)[0])


def _permission(key: str) -> str:
    if key in FORM_PERMISSIONS:
        return FORM_PERMISSIONS[key]
    prefix = next((p for p in BUTTON_PERMISSIONS if key.startswith(p)), None)
    assert prefix is not None, f"form or button {key!r} is not in the audit: add it to FORM_PERMISSIONS"
    return BUTTON_PERMISSIONS[prefix]


EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    # persona: (forms it must be offered in the demo, forms it must not be offered)
    "reviewer.wang": (
        {"assess_risk", "decide_application", "expert_opinion_application", "expert_opinion_product",
         "review_compliance", "verify_issue", "reject_issue", "extend_deadline", "close_issue"},
        {"create_subscription", "set_cap", "set_plan", "retire_plan", "publish_evaluation", "unit_suspension",
         "subscription_suspension", "unlist", "revoke_api_client", "close_post", "second_post"},
    ),
    "pm.li": (
        {"set_plan", "verify_issue", "reject_issue", "extend_deadline", "close_issue", "close_post"},
        {"assess_risk", "decide_application", "qualify_unit", "set_cap", "publish_evaluation", "unit_suspension",
         "subscription_suspension", "review_compliance", "expert_opinion_application", "expert_opinion_product",
         "revoke_api_client", "second_post"},
    ),
    "admin.zhao": (
        {"decide_application", "set_cap", "set_plan", "publish_evaluation",
         "unit_suspension", "subscription_suspension", "extend_deadline", "close_post"},
        {"assess_risk", "verify_issue", "reject_issue", "close_issue", "review_compliance",
         "expert_opinion_application", "expert_opinion_product", "second_post", "refuse_rectification"},
    ),
    "bureau.zhang": (
        {"expert_opinion_application", "expert_opinion_product"},
        {"assess_risk", "decide_application", "create_subscription", "set_cap", "set_plan", "publish_evaluation",
         "unit_suspension", "extend_deadline", "verify_issue", "revoke_api_client", "close_post", "second_post"},
    ),
    "bus.clerk": (
        {"rectify_issue", "refuse_rectification"},
        {"verify_issue", "extend_deadline", "review_resource", "report_issue", "revoke_api_client", "second_post",
         "close_post", "post_demand"},
    ),
    "mobility0.analyst": (
        {"file_application", "give_feedback", "post_demand", "second_post", "close_post"},
        {"issue_client", "revoke_client", "add_member", "revoke_api_client"},
    ),
    "mobility0.admin": (
        {"file_application", "issue_client", "add_member", "give_feedback", "post_demand", "second_post",
         "close_post"},
        {"respond_post", "revoke_api_client", "refuse_rectification"},
    ),
    "newcomer": ({"register_unit"}, {"file_application", "post_demand", "second_post", "close_post"}),
    "": (set(), set(FORM_PERMISSIONS)),
}


@pytest.mark.parametrize("user", list(PAGES))
def test_art8_art15_each_role_sees_its_pages_and_only_the_forms_its_permissions_allow(viewer: AppTest,
                                                                                     user: str) -> None:
    """Each role sees its pages, and every page renders; every form on them is one the role may send; the
    forms the demo gives it work for are there, and others' are not (the reported bug: a compliance
    reviewer was offered "create subscription", which it may not send)."""
    if user == "newcomer":
        sign_in_new(viewer, user)
    elif user:
        sign_in(viewer, user)
    assert pages(viewer) == PAGES[user]
    role = _acting_role(viewer) if user else None
    offered = _offered(viewer)
    assert not errors(viewer), errors(viewer)
    for title, keys in offered.items():
        for key in keys:
            permission = _permission(key)
            assert role is not None, f"an anonymous visitor is offered {key!r} on {title}"
            assert role in access.PERMISSIONS[permission], \
                f"{user} ({role.value}) is offered {key!r} on {title} without {permission}"
    everything = set().union(*offered.values())
    must, must_not = EXPECTED[user]
    assert must <= everything, f"{user} misses {sorted(must - everything)}"
    assert not must_not & everything, f"{user} is offered {sorted(must_not & everything)}"


# -- the helper itself: the access table's answer, for every role and permission -------------------------


@given(role=st.sampled_from(list(Role)), permission=st.sampled_from(sorted(access.PERMISSIONS)))
def test_art15_can_says_what_the_service_check_says(role: Role, permission: str) -> None:
    actor = Actor("someone", role, unit_id=_UNIT if role.is_unit else None,
                  provider_id=_UNIT if role is Role.PROVIDER_STAFF else None)
    try:
        access.require(actor, permission)
        allowed = True
    except PermissionDenied:
        allowed = False
    assert can(actor, permission) is allowed


def test_art15_nobody_signed_in_can_do_nothing_and_an_unknown_permission_is_a_bug() -> None:
    assert not any(can(None, p) for p in access.PERMISSIONS)
    with pytest.raises(KeyError, match="no permission"):
        can(Actor("admin", Role.OPERATOR_ADMIN), "subscription.creat")

