"""Deny-by-default access control: which roles may issue which commands.

A command not listed here cannot be issued by anyone but the system. Organisation
checks (a unit admin acts only for their own unit, provider staff only for their own
provider) follow the role check, on the aggregate's ids.
"""

from __future__ import annotations

from uuid import UUID

from domain.errors import PermissionDenied
from domain.identity import Actor, Role

R = Role
#: permission -> roles that hold it. Anything absent is denied.
PERMISSIONS: dict[str, frozenset[Role]] = {
    # parties
    "unit.register": frozenset({R.APPLICANT, R.UNIT_ADMIN}),
    "unit.qualify": frozenset({R.OPERATOR_ADMIN, R.COMPLIANCE_REVIEWER}),
    "unit.manage_members": frozenset({R.UNIT_ADMIN}),
    "unit.suspend": frozenset({R.OPERATOR_ADMIN}),
    "unit.terminate": frozenset({R.OPERATOR_ADMIN}),
    "staff.enrol": frozenset({R.OPERATOR_ADMIN}),
    "staff.grant": frozenset({R.OPERATOR_ADMIN}),
    # catalog
    "provider.register": frozenset({R.OPERATOR_ADMIN, R.SUPERVISOR}),
    "provider.manage_staff": frozenset({R.OPERATOR_ADMIN, R.SUPERVISOR}),
    "catalog.compile": frozenset({R.PROVIDER_STAFF}),
    "catalog.review": frozenset({R.SUPERVISOR}),
    "catalog.consent": frozenset({R.PROVIDER_STAFF}),
    # products and pricing
    "product.build": frozenset({R.PRODUCT_MANAGER}),
    "product.review": frozenset({R.COMPLIANCE_REVIEWER}),
    "product.list": frozenset({R.PRODUCT_MANAGER, R.OPERATOR_ADMIN}),
    "product.price": frozenset({R.PRODUCT_MANAGER, R.OPERATOR_ADMIN}),
    "product.set_cap": frozenset({R.OPERATOR_ADMIN}),
    "product.showcase": frozenset({R.PRODUCT_MANAGER, R.OPERATOR_ADMIN}),
    "expert.opine": frozenset({R.SUPERVISOR, R.COMPLIANCE_REVIEWER}),
    # demand
    "demand.file": frozenset({R.UNIT_ADMIN, R.UNIT_ANALYST}),
    "demand.assess": frozenset({R.COMPLIANCE_REVIEWER}),
    "demand.decide": frozenset({R.COMPLIANCE_REVIEWER, R.OPERATOR_ADMIN}),
    "demand.post": frozenset({R.UNIT_ADMIN, R.UNIT_ANALYST}),
    "demand.respond": frozenset({R.PRODUCT_MANAGER, R.OPERATOR_ADMIN}),
    "demand.close_post": frozenset({R.UNIT_ADMIN, R.UNIT_ANALYST, R.PRODUCT_MANAGER, R.OPERATOR_ADMIN}),
    # licensing
    "subscription.create": frozenset({R.OPERATOR_ADMIN, R.PRODUCT_MANAGER}),
    "subscription.sign_unit": frozenset({R.UNIT_ADMIN}),
    "subscription.sign_operator": frozenset({R.OPERATOR_ADMIN}),
    "subscription.suspend": frozenset({R.OPERATOR_ADMIN}),
    "subscription.expire": frozenset({R.OPERATOR_ADMIN}),
    "subscription.terminate": frozenset({R.OPERATOR_ADMIN}),
    "subscription.entitle": frozenset({R.OPERATOR_ADMIN}),
    # usage: analysts and admins of the unit use data; the system meters workspaces
    "usage.use": frozenset({R.UNIT_ADMIN, R.UNIT_ANALYST}),
    # API clients (OAuth 2): a unit's admins manage them; the operator revokes on misuse (art. 34)
    "client.issue": frozenset({R.UNIT_ADMIN}),
    "client.revoke": frozenset({R.UNIT_ADMIN, R.OPERATOR_ADMIN}),
    "usage.view": frozenset({R.UNIT_ADMIN, R.UNIT_ANALYST, R.OPERATOR_ADMIN, R.PRODUCT_MANAGER, R.SUPERVISOR}),
    # feedback and quality
    "feedback.give": frozenset({R.UNIT_ADMIN, R.UNIT_ANALYST}),
    "feedback.respond": frozenset({R.PRODUCT_MANAGER, R.COMPLIANCE_REVIEWER, R.OPERATOR_ADMIN}),
    "quality.report": frozenset({R.UNIT_ADMIN, R.UNIT_ANALYST, R.PRODUCT_MANAGER, R.COMPLIANCE_REVIEWER}),
    "quality.verify": frozenset({R.PRODUCT_MANAGER, R.COMPLIANCE_REVIEWER}),
    "quality.rectify": frozenset({R.PROVIDER_STAFF}),
    "quality.extend": frozenset({R.PRODUCT_MANAGER, R.COMPLIANCE_REVIEWER, R.OPERATOR_ADMIN}),
    # incentives
    "incentives.publish": frozenset({R.OPERATOR_ADMIN}),
}


def require(actor: Actor, permission: str) -> None:
    """Raise ``PermissionDenied`` unless ``actor``'s role holds ``permission``."""
    if actor.role is Role.SYSTEM:
        return
    roles = PERMISSIONS.get(permission)
    if roles is None or actor.role not in roles:
        raise PermissionDenied(
            f"{actor.role.value} may not {permission}", permission=permission, user=actor.user_id
        )


def require_unit(actor: Actor, unit_id: UUID) -> None:
    """Unit roles act only for their own unit; operator and system roles are not limited."""
    if actor.role.is_unit and actor.unit_id != unit_id:
        raise PermissionDenied(
            "a unit member acts only for their own unit", unit=unit_id, user=actor.user_id
        )


def require_provider(actor: Actor, provider_id: UUID) -> None:
    """Provider staff act only for their own provider."""
    if actor.role is Role.PROVIDER_STAFF and actor.provider_id != provider_id:
        raise PermissionDenied(
            "provider staff act only for their own provider", provider=provider_id, user=actor.user_id
        )
