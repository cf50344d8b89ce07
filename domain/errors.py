"""One exception hierarchy for every rule the domain enforces.

Each error carries a machine-readable ``code`` (the API maps it to RFC 9457 problem
JSON, the CLI prints it, the UI shows ``message``) and the ids involved, so a caller
can say exactly what was wrong without parsing text.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

E = TypeVar("E", bound=Enum)


class DomainError(Exception):
    """A rule of the marketplace refused a command; nothing was changed."""

    code = "domain_error"
    status = 422

    def __init__(self, message: str, **ids: Any) -> None:
        super().__init__(message)
        self.message = message
        self.ids = {k: str(v) for k, v in ids.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.ids}


class InvalidInput(DomainError):
    """A command's argument is missing or malformed; ``field`` names it."""

    code = "invalid_input"

    def __init__(self, field: str, problem: str, **ids: Any) -> None:
        super().__init__(f"{field}: {problem}", field=field, **ids)
        self.field = field


class NotFound(DomainError):
    code = "not_found"
    status = 404


class AlreadyExists(DomainError):
    code = "already_exists"
    status = 409


class InvalidState(DomainError):
    """The aggregate is not in a state that allows the command."""

    code = "invalid_state"
    status = 409


class PermissionDenied(DomainError):
    """Deny by default: the acting user's role or organisation does not allow this."""

    code = "permission_denied"
    status = 403


class SeparationOfDuties(PermissionDenied):
    """Art. 15-16, 22: who prepared something cannot also approve it."""

    code = "separation_of_duties"


class ConcurrencyConflict(DomainError):
    """Others kept changing the same aggregate; retried and gave up."""

    code = "conflict"
    status = 409


def require_text(field: str, value: object, *, min_length: int = 1, max_length: int = 10_000) -> str:
    """Return ``value`` stripped, or raise ``InvalidInput`` naming ``field``."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    text = value.strip()
    if len(text) < min_length:
        if min_length <= 1:
            raise InvalidInput(field, "is required")
        raise InvalidInput(field, f"must be at least {min_length} characters")
    if len(text) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters")
    return text


def parse_enum(field: str, enum_type: type[E], value: object) -> E:
    """Accept a member or its value; otherwise name the field and the allowed values."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum_type)
        raise InvalidInput(field, f"must be one of {allowed}; got {value!r}") from None
