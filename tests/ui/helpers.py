"""Driving the app in AppTest like a person would: pick a persona, open a page, fill a form."""

from __future__ import annotations

from typing import Any

from streamlit.testing.v1 import AppTest


def sign_in(at: AppTest, user_id: str, role: str | None = None) -> AppTest:
    """Development sign-in as the persona whose label starts with ``user_id`` (and names ``role``)."""
    box = at.sidebar.selectbox(key="dev_persona")
    labels = box.options
    matches = [i for i, label in enumerate(labels)
               if label.startswith(f"{user_id} —") and (role is None or role in label)]
    assert matches, f"no persona {user_id} among {labels[:8]}…"
    box.set_value(labels[matches[0]]).run()
    ok(at)
    return at


def sign_in_new(at: AppTest, user_id: str) -> AppTest:
    box = at.sidebar.selectbox(key="dev_persona")
    box.set_value(box.options[-1]).run()
    at.sidebar.text_input(key="dev_new_user").input(user_id).run()
    ok(at)
    return at


def open_page(at: AppTest, title: str) -> AppTest:
    nav = at.sidebar.radio(key="nav")
    assert title in nav.options, f"{title} not offered; pages: {nav.options}"
    nav.set_value(title).run()
    ok(at)
    return at


def pages(at: AppTest) -> list[str]:
    return list(at.sidebar.radio(key="nav").options)


def submit(at: AppTest, label: str) -> AppTest:
    buttons = [b for b in at.button if b.label == label]
    assert buttons, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    buttons[0].click().run()
    ok(at)
    return at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def successes(at: AppTest) -> list[str]:
    return [s.value for s in at.success]


def form_error(at: AppTest, key: str) -> dict[str, Any] | None:
    """What the page recorded for the form ``key`` (code, message, field)."""
    result: dict[str, Any] | None = at.session_state["errors"].get(key) if "errors" in at.session_state else None
    return result


def choose(at: AppTest, key: str, predicate: Any) -> None:
    """Set the selectbox ``key`` to its first option whose label satisfies ``predicate``."""
    box = at.selectbox(key=key)
    box.set_value(next(o for o in box.options if predicate(o)))


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    ok(at)
    return at


def forms(at: AppTest) -> set[str]:
    """The ids of the forms on the page (every tab of it: AppTest renders them all)."""
    return {f.key for f in at.form if f.key}


def button_keys(at: AppTest) -> set[str]:
    """Keys of the buttons outside forms that send a command (signing, listing)."""
    return {b.key for b in at.button if b.key and not b.form_id}


def edit_table(at: AppTest, key: str, *, edited: dict[int, dict[str, Any]] | None = None,
               added: list[dict[str, Any]] | None = None, deleted: list[int] | None = None) -> None:
    """Type into the ``st.data_editor`` ``key`` as a person would (AppTest applies edits given as its state)."""
    at.session_state[key] = {"edited_rows": edited or {}, "added_rows": added or [], "deleted_rows": deleted or []}


def tab(at: AppTest, label: str) -> Any:
    return next(t for t in at.tabs if t.label == label)
