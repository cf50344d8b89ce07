"""Who is signed in, and as whom they act.

People sign in with OpenID Connect (``st.login``, configured by ``[auth]`` in
``.streamlit/secrets.toml``). The identity provider's claims say who the person is and
which roles, unit and provider they *claim*; ``marketplace.directory.Directory`` turns a
claim into an ``Actor`` only when the store records that role (staff grant, unit
membership, provider roster), so a forged or stale claim grants nothing. A person with
no recorded role acts as an applicant (who may register a unit).

Without ``[auth]`` (the demo) a clearly marked development sign-in lets a visitor pick a
persona the store records; it is never offered when a provider is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import streamlit as st

from domain.errors import DomainError
from domain.identity import Actor, Role
from marketplace.directory import Directory
from streamlit_app.ui.context import Resources, pick
from streamlit_app.ui.reads import Persona

#: Claims read from the ID token, in order of preference, for the user id the store knows.
USER_CLAIMS = ("preferred_username", "email", "sub")


@dataclass(frozen=True)
class Session:
    """The signed-in person and the actor they currently act as (``None``: browsing anonymously)."""

    user_id: str | None
    actor: Actor | None
    name: str
    via: str  # "oidc" | "dev" | "anonymous"

    @property
    def role(self) -> Role | None:
        return self.actor.role if self.actor else None


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def _claims() -> dict[str, Any]:
    user = st.user
    return {k: user.get(k) for k in user}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return [str(v) for v in value]


def resolve(directory: Directory, persona: Persona) -> Actor:
    """An actor for a persona, verified against the store (raises ``PermissionDenied``)."""
    role = Role(persona.role)
    if role.is_unit:
        return directory.unit_member(persona.user_id, UUID(str(persona.unit_id)))
    if role is Role.PROVIDER_STAFF:
        return directory.provider_staff(persona.user_id, UUID(str(persona.provider_id)))
    if role is Role.APPLICANT:
        return directory.applicant(persona.user_id)
    return directory.staff(persona.user_id, role)


def claimed_personas(claims: dict[str, Any], user_id: str, recorded: list[Persona]) -> list[Persona]:
    """The personas a person's claims ask for that the store also records.

    A claim of ``roles`` limits which recorded roles are offered; ``unit``/``provider``
    claims limit which organisation. No claim of roles means "whatever the store records".
    """
    roles = set(_as_list(claims.get("roles")))
    units = set(_as_list(claims.get("unit")))
    providers = set(_as_list(claims.get("provider")))
    chosen = []
    for p in recorded:
        if p.user_id != user_id or (roles and p.role not in roles):
            continue
        if p.unit_id and units and p.unit_id not in units:
            continue
        if p.provider_id and providers and p.provider_id not in providers:
            continue
        chosen.append(p)
    return chosen


def sign_in_panel(res: Resources) -> Session:
    """Render the sidebar's sign-in part and return who is acting."""
    directory = Directory(res.mp.app, res.mp.parties.clock)
    with st.sidebar:
        if oidc_configured():
            return _oidc(res, directory)
        return _dev(res, directory)


def _choose(res: Resources, directory: Directory, user_id: str, options: list[Persona], name: str,
            via: str) -> Session:
    if not options:
        options = [Persona(user_id, Role.APPLICANT.value, f"{user_id} — applicant (no unit yet)")]
    labels = [p.label for p in options]
    index = pick("Act as", len(options), lambda i: labels[i], key="act_as")
    persona = options[index]
    try:
        actor = resolve(directory, persona)
    except DomainError as error:
        st.error(f"Cannot act as {persona.label}: {error.message}")
        return Session(user_id, None, name, via)
    return Session(user_id, actor, name, via)


def _oidc(res: Resources, directory: Directory) -> Session:
    if not st.user.get("is_logged_in", False):
        st.caption("Sign in with the city's identity provider to use the portals.")
        st.button("Sign in", on_click=st.login, key="oidc_login", type="primary")
        return Session(None, None, "visitor", "anonymous")
    claims = _claims()
    user_id = next((str(claims[c]) for c in USER_CLAIMS if claims.get(c)), "")
    name = str(claims.get("name") or user_id)
    st.markdown(f"Signed in as **{name}** (`{user_id}`)")
    options = claimed_personas(claims, user_id, res.reads.memberships(user_id))
    session = _choose(res, directory, user_id, options, name, "oidc")
    st.button("Sign out", on_click=st.logout, key="oidc_logout")
    return session


def _dev(res: Resources, directory: Directory) -> Session:
    st.warning("**Development sign-in** — no identity provider is configured (`[auth]` in "
               "`.streamlit/secrets.toml`). Pick a demo persona; never use this in production.", icon="🧪")
    personas = res.reads.personas()
    labels = ["— browse without signing in —", *[p.label for p in personas], "someone new (applicant)…"]
    index = pick("Demo persona", len(labels), lambda i: labels[i], key="dev_persona")
    index = index or 0
    if index == 0:
        return Session(None, None, "visitor", "anonymous")
    if index == len(labels) - 1:
        user_id = st.text_input("Your user id", key="dev_new_user").strip()
        if not user_id:
            return Session(None, None, "visitor", "anonymous")
        persona = Persona(user_id, Role.APPLICANT.value, f"{user_id} — applicant")
    else:
        persona = personas[index - 1]
    try:
        actor = resolve(directory, persona)
    except DomainError as error:
        st.error(f"Cannot act as {persona.label}: {error.message}")
        return Session(persona.user_id, None, persona.user_id, "dev")
    st.caption(f"Acting as `{actor}`")
    st.button("Sign out", key="dev_logout", on_click=lambda: st.session_state.update(dev_persona=labels[0]))
    return Session(persona.user_id, actor, persona.user_id, "dev")
