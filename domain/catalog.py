"""Catalog: who holds public data and what they hold (art. 3, 5, 10-14).

Public data is what public management and service organisations collect (art. 3):
water, power, gas, public transport, health and the like. Each such *provider*
compiles its own catalogue (art. 10); the big-data bureau reviews every entry before it
joins the city's master catalogue (art. 5, 10). An approved entry receives *versions*
(data deliveries identified by content hash, art. 10-11). Every entry carries the grade
and openness that decide whether and how it may be operated (art. 12 and GB/T
43697-2024), and no entry feeds a product until its provider has consented to supply
it for that product (art. 14).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidState,
    PermissionDenied,
    parse_enum,
    require_text,
)
from domain.identity import Actor, Role
from domain.parties import validate_email

_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


# -- classification (art. 3, 12) ---------------------------------------------------------


class ProviderKind(Enum):
    """The public management and service organisations of art. 3."""

    WATER = "water"
    POWER = "power"
    GAS = "gas"
    PUBLIC_TRANSPORT = "public_transport"
    HEALTH = "health"
    MARKET_REGULATION = "market_regulation"
    NATURAL_RESOURCES = "natural_resources"
    HUMAN_RESOURCES_SOCIAL_SECURITY = "human_resources_social_security"
    EDUCATION = "education"
    CIVIL_AFFAIRS = "civil_affairs"
    OTHER = "other"


class FieldType(Enum):
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    CATEGORY = "category"


class Grade(Enum):
    """Data grade (art. 12, GB/T 43697-2024): core > important > general 4 > ... > general 1.

    Members compare by strictness, so ``max(grades)`` is the strictest grade, which is
    the grade of anything derived from them.
    """

    CORE = "core"
    IMPORTANT = "important"
    GENERAL_4 = "general_4"
    GENERAL_3 = "general_3"
    GENERAL_2 = "general_2"
    GENERAL_1 = "general_1"

    @property
    def rank(self) -> int:
        """Strictness: 1 for general level 1 up to 6 for core data."""
        return _GRADE_RANK[self]

    @property
    def is_general(self) -> bool:
        return self.rank <= 4

    @property
    def is_operable(self) -> bool:
        """Core and important data may not be operated (national grading rules)."""
        return self.is_general

    def is_stricter_than(self, other: Grade) -> bool:
        return self.rank > other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Grade):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Grade):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Grade):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Grade):
            return NotImplemented
        return self.rank >= other.rank

    @staticmethod
    def strictest(grades: Iterable[Grade]) -> Grade:
        """The grade of derived data follows its highest, strictest source."""
        listed = list(grades)
        if not listed:
            raise InvalidInput("grades", "the strictest of no grades is undefined")
        return max(listed, key=lambda g: g.rank)


_GRADE_RANK = {
    Grade.GENERAL_1: 1,
    Grade.GENERAL_2: 2,
    Grade.GENERAL_3: 3,
    Grade.GENERAL_4: 4,
    Grade.IMPORTANT: 5,
    Grade.CORE: 6,
}


class Openness(Enum):
    """Whether an entry may be opened: freely, on conditions, or not at all."""

    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"
    NOT_OPEN = "not_open"


class UpdateFrequency(Enum):
    REALTIME = "realtime"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"
    ONCE = "once"


class ResourceStatus(Enum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


class SupplyStatus(Enum):
    PENDING = "pending"
    GRANTED = "granted"
    REFUSED = "refused"


# -- value objects ---------------------------------------------------------------------------


def validate_field_name(value: object) -> str:
    """A column name usable in every engine the sandbox compiles to (identifier-like).

    A leading letter, then letters, digits or ``_``; at most 64 characters; not a
    Python keyword (query expressions are checked by Python code). Names starting with
    ``_`` are reserved for columns the platform adds (watermarks).
    """
    if not isinstance(value, str):
        raise InvalidInput("name", "must be text")
    name = value.strip()
    if not _FIELD_NAME.fullmatch(name):
        raise InvalidInput(
            "name",
            f"must start with a letter and contain only letters, digits and '_' (at most 64), got {value!r}",
        )
    if keyword.iskeyword(name):
        raise InvalidInput("name", f"{name!r} is a reserved word")
    return name


@dataclass(frozen=True)
class FieldSpec:
    """One column of a catalog resource or product; ``personal`` marks personal information (art. 35)."""

    name: str
    dtype: FieldType
    description: str
    personal: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", validate_field_name(self.name))
        object.__setattr__(self, "dtype", parse_enum("dtype", FieldType, self.dtype))
        object.__setattr__(self, "description", require_text("description", self.description, max_length=1000))
        if not isinstance(self.personal, bool):
            raise InvalidInput("personal", f"must be true or false, got {self.personal!r}")

    @classmethod
    def parse(cls, value: FieldSpec | Mapping[str, Any]) -> FieldSpec:
        """Accept a spec or the mapping a form, CSV or API sends."""
        if isinstance(value, FieldSpec):
            return value
        if not isinstance(value, Mapping):
            raise InvalidInput("field", f"must be a field spec, got {type(value).__name__}")
        known = {"name", "dtype", "description", "personal"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidInput("field", f"unknown keys {unknown}; allowed: {sorted(known)}")
        for key in ("name", "dtype", "description"):
            if key not in value:
                raise InvalidInput(key, "is required")
        return cls(**value)


def parse_fields(field: str, value: object) -> tuple[FieldSpec, ...]:
    """A non-empty schema with unique column names; errors name the offending position."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidInput(field, "must be a list of field specs")
    if not value:
        raise InvalidInput(field, "at least one field is required")
    specs: list[FieldSpec] = []
    for i, item in enumerate(value):
        try:
            specs.append(FieldSpec.parse(item))
        except InvalidInput as e:
            raise prefixed(f"{field}[{i}]", e) from None
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise InvalidInput(f"{field}[{i}].name", f"duplicate field name {spec.name!r}")
        seen.add(spec.name)
    return tuple(specs)


def prefixed(prefix: str, error: InvalidInput) -> InvalidInput:
    """The same problem, with the path of the enclosing value (``fields[2].name``)."""
    problem = error.message.split(": ", 1)[1] if ": " in error.message else error.message
    return InvalidInput(f"{prefix}.{error.field}", problem)


def decision_reason(positive: bool, reason: object) -> str:
    """A refusal must say why (the party refused can act on it); an approval may add a note."""
    if positive and (reason is None or (isinstance(reason, str) and not reason.strip())):
        return ""
    return require_text("reason", reason, max_length=2000)


def validate_content_hash(value: object) -> str:
    """A SHA-256 digest in lower-case hex: versions are content-addressed (art. 10-11, 18)."""
    if not isinstance(value, str):
        raise InvalidInput("content_hash", "must be text")
    digest = value.strip().lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise InvalidInput("content_hash", f"must be a SHA-256 digest (64 hex digits), got {value!r}")
    return digest


def validate_row_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("row_count", f"must be a whole number, got {value!r}")
    if value < 0:
        raise InvalidInput("row_count", f"must not be negative, got {value}")
    return value


@dataclass(frozen=True)
class DataVersion:
    """One delivery of data, identified by the SHA-256 of its content (art. 10-11)."""

    number: int
    content_hash: str
    row_count: int
    registered_at: datetime


@dataclass(frozen=True)
class SupplyRequest:
    """A request to supply a resource to one product and the provider's answer (art. 14)."""

    product_id: UUID
    requested_by: str
    status: SupplyStatus
    reason: str = ""


# -- providers (art. 3, 15) -------------------------------------------------------------------


class Provider(Aggregate):
    """A public management or service organisation that holds public data (art. 3).

    Its staff roster decides who may compile its catalogue and consent to supply
    (art. 10, 14, 15 "named contacts"): a provider-staff login alone is not enough.
    """

    @staticmethod
    def create_id(name: str, **_: Any) -> UUID:
        return uuid5(NAMESPACE_URL, f"shuyun/provider/{name}")

    @classmethod
    def register(cls, *, name: str, kind: ProviderKind | str, contact_email: str, by: Actor) -> Provider:
        return cls(
            name=require_text("name", name, min_length=2, max_length=200),
            kind=parse_enum("kind", ProviderKind, kind),
            contact_email=validate_email("contact_email", contact_email),
            by=by,
        )

    @event("Registered")
    def __init__(self, *, name: str, kind: ProviderKind, contact_email: str, by: Actor) -> None:
        self.name = name
        self.kind = kind
        self.contact_email = contact_email
        self.staff: list[str] = []

    def add_staff(self, *, user_id: str, by: Actor) -> None:
        user_id = require_text("user_id", user_id, max_length=200)
        if user_id in self.staff:
            raise AlreadyExists(f"{user_id} is already on the staff of {self.name!r}", provider=self.id, user=user_id)
        self._staff_added(user_id=user_id, by=by)

    @event("StaffAdded")
    def _staff_added(self, *, user_id: str, by: Actor) -> None:
        self.staff.append(user_id)

    def remove_staff(self, *, user_id: str, by: Actor) -> None:
        if user_id not in self.staff:
            raise InvalidInput("user_id", f"{user_id!r} is not on the staff of {self.name!r}", provider=self.id)
        self._staff_removed(user_id=user_id, by=by)

    @event("StaffRemoved")
    def _staff_removed(self, *, user_id: str, by: Actor) -> None:
        self.staff.remove(user_id)

    def has_staff(self, user_id: str) -> bool:
        return user_id in self.staff

    def check_staff(self, actor: Actor) -> None:
        """Only this provider's rostered staff act for it; the system role acts for anyone."""
        if actor.role is Role.SYSTEM:
            return
        if actor.role is not Role.PROVIDER_STAFF or actor.provider_id != self.id or not self.has_staff(actor.user_id):
            raise NotProviderStaff(
                f"{actor} is not on the staff of provider {self.name!r}", provider=self.id, user=actor.user_id
            )


# -- catalog resources (art. 5, 10-14) -----------------------------------------------------


class CatalogResource(Aggregate):
    """One entry of a provider's catalogue: schema, classification, grade, openness, versions.

    Compiled by the provider's staff and reviewed by the bureau (art. 10). The name is
    the natural key within the provider and is fixed; to rename, compile a new entry.
    Only a rejected entry is revised (then it is reviewed again); an approved entry
    changes only by new versions of its data, so products built on it can rely on its
    grade, openness and schema.
    """

    grows = True

    @staticmethod
    def create_id(provider_id: UUID, name: str, **_: Any) -> UUID:
        return uuid5(NAMESPACE_URL, f"shuyun/resource/{provider_id}/{name}")

    @classmethod
    def compile(
        cls,
        *,
        provider: Provider,
        name: str,
        description: str,
        category: str,
        fields: Sequence[FieldSpec | Mapping[str, Any]],
        grade: Grade | str,
        openness: Openness | str,
        update_frequency: UpdateFrequency | str,
        by: Actor,
    ) -> CatalogResource:
        provider.check_staff(by)
        return cls(
            provider_id=provider.id,
            name=require_text("name", name, min_length=2, max_length=200),
            **_describe(description, category, fields, grade, openness, update_frequency),
            by=by,
        )

    @event("Compiled")
    def __init__(
        self,
        *,
        provider_id: UUID,
        name: str,
        description: str,
        category: str,
        fields: tuple[FieldSpec, ...],
        grade: Grade,
        openness: Openness,
        update_frequency: UpdateFrequency,
        by: Actor,
    ) -> None:
        self.provider_id = provider_id
        self.name = name
        self._set_description(description, category, fields, grade, openness, update_frequency)
        self.status = ResourceStatus.SUBMITTED
        self.review_reason = ""
        self.versions: list[DataVersion] = []
        self.supply: dict[str, SupplyRequest] = {}

    def _set_description(
        self,
        description: str,
        category: str,
        fields: Sequence[FieldSpec],
        grade: Grade,
        openness: Openness,
        update_frequency: UpdateFrequency,
    ) -> None:
        self.description = description
        self.category = category
        self.fields: list[FieldSpec] = list(fields)
        self.grade = grade
        self.openness = openness
        self.update_frequency = update_frequency

    # -- revision and review (art. 10) ----------------------------------------------------
    def revise(
        self,
        *,
        provider: Provider,
        description: str,
        category: str,
        fields: Sequence[FieldSpec | Mapping[str, Any]],
        grade: Grade | str,
        openness: Openness | str,
        update_frequency: UpdateFrequency | str,
        by: Actor,
    ) -> None:
        """Correct a rejected entry; it goes back to the bureau for review."""
        self.check_compiler(provider, by)
        self.check_status("revise", ResourceStatus.REJECTED)
        self._revised(**_describe(description, category, fields, grade, openness, update_frequency), by=by)

    @event("Revised")
    def _revised(
        self,
        *,
        description: str,
        category: str,
        fields: tuple[FieldSpec, ...],
        grade: Grade,
        openness: Openness,
        update_frequency: UpdateFrequency,
        by: Actor,
    ) -> None:
        self._set_description(description, category, fields, grade, openness, update_frequency)
        self.status = ResourceStatus.SUBMITTED

    def review(self, *, approved: bool, reason: str, by: Actor) -> None:
        """The bureau admits the entry to the master catalogue or sends it back (art. 5, 10)."""
        self.check_status("review", ResourceStatus.SUBMITTED)
        if not isinstance(approved, bool):
            raise InvalidInput("approved", f"must be true or false, got {approved!r}")
        reason = decision_reason(approved, reason)
        self._reviewed(approved=approved, reason=reason, by=by)

    @event("Reviewed")
    def _reviewed(self, *, approved: bool, reason: str, by: Actor) -> None:
        self.status = ResourceStatus.APPROVED if approved else ResourceStatus.REJECTED
        self.review_reason = reason

    # -- versions (art. 10-11) ---------------------------------------------------------------
    def register_version(
        self,
        *,
        provider: Provider,
        content_hash: str,
        row_count: int,
        schema: Mapping[str, FieldType | str] | Sequence[str],
        at: datetime,
        by: Actor,
    ) -> None:
        """Record a delivery of data whose columns match the approved schema."""
        self.check_compiler(provider, by)
        self.check_approved("register a version of")
        digest = validate_content_hash(content_hash)
        rows = validate_row_count(row_count)
        self.check_schema(schema)
        for v in self.versions:
            if v.content_hash == digest:
                raise DuplicateVersion(
                    f"version {v.number} already has content {digest}", resource=self.id, content_hash=digest
                )
        self._version_registered(
            number=len(self.versions) + 1, content_hash=digest, row_count=rows, at=at, by=by
        )

    @event("VersionRegistered")
    def _version_registered(self, *, number: int, content_hash: str, row_count: int, at: datetime, by: Actor) -> None:
        self.versions.append(DataVersion(number, content_hash, row_count, at))

    def check_schema(self, schema: Mapping[str, FieldType | str] | Sequence[str]) -> None:
        """The data's columns are exactly the catalogued fields (and, if given, of their types)."""
        if isinstance(schema, (str, bytes)) or not isinstance(schema, Mapping | Sequence):
            raise InvalidInput("schema", "must be the list of column names or a mapping of name to type")
        names = list(schema)
        expected = {f.name: f.dtype for f in self.fields}
        missing = [n for n in expected if n not in names]
        unexpected = [n for n in names if n not in expected]
        if missing or unexpected or len(set(names)) != len(names):
            raise SchemaMismatch(
                "schema",
                f"columns do not match the catalogue: missing {missing}, unexpected {unexpected}",
                resource=self.id,
            )
        if isinstance(schema, Mapping):
            wrong = []
            for name, dtype in schema.items():
                parsed = parse_enum(f"schema.{name}", FieldType, dtype)
                if parsed is not expected[name]:
                    wrong.append(f"{name} is {parsed.value}, catalogued as {expected[name].value}")
            if wrong:
                raise SchemaMismatch("schema", "column types differ: " + "; ".join(wrong), resource=self.id)

    # -- supply consent (art. 14) -----------------------------------------------------------
    def request_supply(self, *, product_id: UUID, by: Actor) -> None:
        """Ask the provider to supply this entry to a product (art. 14)."""
        self.check_approved("request supply of")
        self.check_operable()
        current = self.supply.get(str(product_id))
        if current is not None and current.status is not SupplyStatus.REFUSED:
            raise AlreadyExists(
                f"supply to product {product_id} is already {current.status.value}",
                resource=self.id, product=product_id,
            )
        self._supply_requested(product_id=product_id, by=by)

    @event("SupplyRequested")
    def _supply_requested(self, *, product_id: UUID, by: Actor) -> None:
        self.supply[str(product_id)] = SupplyRequest(product_id, by.user_id, SupplyStatus.PENDING)

    def decide_supply(self, *, provider: Provider, product_id: UUID, granted: bool, reason: str, by: Actor) -> None:
        """The provider's staff consent to, or refuse, a pending supply request (art. 14)."""
        self.check_compiler(provider, by)
        if not isinstance(granted, bool):
            raise InvalidInput("granted", f"must be true or false, got {granted!r}")
        current = self.supply.get(str(product_id))
        if current is None or current.status is not SupplyStatus.PENDING:
            state = "no request" if current is None else f"the request is {current.status.value}"
            raise SupplyNotPending(
                f"cannot decide supply to product {product_id}: {state}", resource=self.id, product=product_id
            )
        reason = decision_reason(granted, reason)
        self._supply_decided(product_id=product_id, granted=granted, reason=reason, by=by)

    @event("SupplyDecided")
    def _supply_decided(self, *, product_id: UUID, granted: bool, reason: str, by: Actor) -> None:
        current = self.supply[str(product_id)]
        status = SupplyStatus.GRANTED if granted else SupplyStatus.REFUSED
        self.supply[str(product_id)] = SupplyRequest(product_id, current.requested_by, status, reason)

    def supply_status(self, product_id: UUID) -> SupplyStatus | None:
        current = self.supply.get(str(product_id))
        return None if current is None else current.status

    def consent_granted(self, product_id: UUID) -> bool:
        return self.supply_status(product_id) is SupplyStatus.GRANTED

    # -- queries -----------------------------------------------------------------------------
    @property
    def is_approved(self) -> bool:
        return self.status is ResourceStatus.APPROVED

    @property
    def is_operable(self) -> bool:
        """May feed a product: open in some way, and general-grade (national grading rules)."""
        return self.openness is not Openness.NOT_OPEN and self.grade.is_operable

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def personal_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.personal)

    @property
    def latest_version(self) -> DataVersion | None:
        return self.versions[-1] if self.versions else None

    # -- guards ------------------------------------------------------------------------------
    def check_compiler(self, provider: Provider, by: Actor) -> None:
        """Art. 10: only the staff of the provider that holds the entry act on it."""
        if provider.id != self.provider_id:
            raise NotProviderStaff(
                f"resource {self.name!r} belongs to another provider", resource=self.id, provider=provider.id
            )
        provider.check_staff(by)

    def check_status(self, doing: str, *allowed: ResourceStatus) -> None:
        if self.status not in allowed:
            raise InvalidState(
                f"cannot {doing} a catalog entry that is {self.status.value}",
                resource=self.id, status=self.status.value,
            )

    def check_approved(self, doing: str) -> None:
        if not self.is_approved:
            raise ResourceNotApproved(
                f"cannot {doing} catalog entry {self.name!r}: it is {self.status.value}, not approved by the bureau",
                resource=self.id, status=self.status.value,
            )

    def check_operable(self) -> None:
        if self.openness is Openness.NOT_OPEN:
            raise SourceNotOperable(
                f"catalog entry {self.name!r} is not open and may not be operated", resource=self.id
            )
        if not self.grade.is_operable:
            raise SourceNotOperable(
                f"catalog entry {self.name!r} is {self.grade.value} data and may not be operated",
                resource=self.id, grade=self.grade.value,
            )


def _describe(
    description: str,
    category: str,
    fields: Sequence[FieldSpec | Mapping[str, Any]],
    grade: Grade | str,
    openness: Openness | str,
    update_frequency: UpdateFrequency | str,
) -> dict[str, Any]:
    """Parse the descriptive part of an entry, shared by compile and revise."""
    return {
        "description": require_text("description", description, max_length=5000),
        "category": require_text("category", category, max_length=200),
        "fields": parse_fields("fields", fields),
        "grade": parse_enum("grade", Grade, grade),
        "openness": parse_enum("openness", Openness, openness),
        "update_frequency": parse_enum("update_frequency", UpdateFrequency, update_frequency),
    }


class NotProviderStaff(PermissionDenied):
    """Art. 10, 14: acting on a provider's catalogue needs a place on its staff roster."""

    code = "not_provider_staff"


class ResourceNotApproved(InvalidState):
    """Art. 10: an entry is usable only after the bureau approved it."""

    code = "resource_not_approved"


class SourceNotOperable(InvalidState):
    """Data that may not be opened (not_open), or core/important data, may not be operated."""

    code = "source_not_operable"


class DuplicateVersion(AlreadyExists):
    """A version with the same content hash exists: the same data is not registered twice."""

    code = "duplicate_version"


class SchemaMismatch(InvalidInput):
    """The delivered columns differ from the catalogued (and reviewed) schema (art. 10-11)."""

    code = "schema_mismatch"


class SupplyNotPending(InvalidState):
    """Only a pending supply request can be decided (art. 14)."""

    code = "supply_not_pending"
