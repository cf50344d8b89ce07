"""Catalog rules (art. 3, 5, 10-14): providers, entries, bureau review, versions, supply consent."""

from __future__ import annotations

import copy
import hashlib
import keyword
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.catalog import (
    CatalogResource,
    DuplicateVersion,
    FieldSpec,
    FieldType,
    Grade,
    NotProviderStaff,
    Openness,
    Provider,
    ProviderKind,
    ResourceNotApproved,
    ResourceStatus,
    SchemaMismatch,
    SourceNotOperable,
    SupplyNotPending,
    SupplyStatus,
    parse_fields,
    validate_field_name,
)
from domain.errors import AlreadyExists, DomainError, InvalidInput, InvalidState
from domain.identity import SYSTEM, Actor, Role

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ADMIN = Actor("admin", Role.OPERATOR_ADMIN)
BUREAU = Actor("bureau", Role.SUPERVISOR)
PM = Actor("pm", Role.PRODUCT_MANAGER)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def water() -> tuple[Provider, Actor]:
    provider = Provider.register(name="Baotou Water", kind="water", contact_email="data@water.cn", by=BUREAU)
    provider.add_staff(user_id="clerk", by=ADMIN)
    return provider, Actor("clerk", Role.PROVIDER_STAFF, provider_id=provider.id)


FIELDS: list[dict[str, Any]] = [
    {"name": "district", "dtype": "category", "description": "District"},
    {"name": "consumption_m3", "dtype": "float", "description": "Consumption"},
    {"name": "holder_name", "dtype": "string", "description": "Account holder", "personal": True},
]


def compiled(provider: Provider, clerk: Actor, **overrides: Any) -> CatalogResource:
    values: dict[str, Any] = {
        "name": "Meter readings", "description": "Monthly readings", "category": "utilities",
        "fields": FIELDS, "grade": "general_2", "openness": "unconditional", "update_frequency": "monthly",
    }
    values.update(overrides)
    return CatalogResource.compile(provider=provider, by=clerk, **values)


def approved(**overrides: Any) -> tuple[CatalogResource, Provider, Actor]:
    provider, clerk = water()
    resource = compiled(provider, clerk, **overrides)
    resource.review(approved=True, reason="", by=BUREAU)
    return resource, provider, clerk


def unchanged(aggregate: Any) -> dict[str, Any]:
    return copy.deepcopy(vars(aggregate))


# -- providers (art. 3, 15) ---------------------------------------------------------------------


def test_art3_provider_kinds_cover_public_management_and_service_organisations() -> None:
    assert {"water", "power", "gas", "public_transport", "health"} <= {k.value for k in ProviderKind}


def test_art3_provider_id_is_deterministic_from_name() -> None:
    provider, _ = water()
    assert provider.id == Provider.create_id("Baotou Water")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"name": "x"}, "name"), ({"kind": "bakery"}, "kind"), ({"contact_email": "nobody"}, "contact_email")],
)
def test_art3_provider_registration_names_bad_field(overrides: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"name": "Baotou Gas", "kind": "gas", "contact_email": "a@gas.cn"}
    values.update(overrides)
    with pytest.raises(InvalidInput) as info:
        Provider.register(by=BUREAU, **values)
    assert info.value.field == field


def test_art15_staff_roster_add_twice_and_remove_unknown_are_refused() -> None:
    provider, _ = water()
    with pytest.raises(AlreadyExists):
        provider.add_staff(user_id="clerk", by=ADMIN)
    with pytest.raises(InvalidInput) as info:
        provider.remove_staff(user_id="ghost", by=ADMIN)
    assert info.value.field == "user_id"
    provider.remove_staff(user_id="clerk", by=ADMIN)
    assert not provider.has_staff("clerk")


def test_art10_only_rostered_staff_of_the_provider_compile() -> None:
    provider, clerk = water()
    other = Provider.register(name="Baotou Gas", kind="gas", contact_email="a@gas.cn", by=BUREAU)
    outsiders = [
        Actor("clerk", Role.PROVIDER_STAFF, provider_id=other.id),  # staff of another provider
        Actor("stranger", Role.PROVIDER_STAFF, provider_id=provider.id),  # not on the roster
        PM,  # not provider staff at all
    ]
    for actor in outsiders:
        with pytest.raises(NotProviderStaff):
            compiled(provider, actor)
    provider.remove_staff(user_id="clerk", by=ADMIN)
    with pytest.raises(NotProviderStaff):
        compiled(provider, clerk)
    assert compiled(provider, SYSTEM).provider_id == provider.id


# -- field specs -------------------------------------------------------------------------------

identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,63}", fullmatch=True)


@given(identifiers)
def test_art10_identifier_like_field_names_are_accepted(name: str) -> None:
    assume(not keyword.iskeyword(name))
    assert validate_field_name(name) == name
    assert FieldSpec(name, FieldType.STRING, "d").name == name


@given(st.text(max_size=70))
def test_art10_field_names_outside_the_identifier_pattern_are_refused(name: str) -> None:
    stripped = name.strip()
    valid = (
        0 < len(stripped) <= 64
        and stripped[0].isascii() and stripped[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c == "_") for c in stripped)
        and not keyword.iskeyword(stripped)
    )
    if valid:
        assert validate_field_name(name) == stripped
    else:
        with pytest.raises(InvalidInput) as info:
            validate_field_name(name)
        assert info.value.field == "name"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ([], "fields"),
        ("district", "fields"),
        ([{"name": "a", "dtype": "string"}], "fields[0].description"),
        ([{"name": "1a", "dtype": "string", "description": "d"}], "fields[0].name"),
        ([{"name": "a", "dtype": "blob", "description": "d"}], "fields[0].dtype"),
        ([{"name": "a", "dtype": "string", "description": "d", "personal": "yes"}], "fields[0].personal"),
        ([{"name": "a", "dtype": "string", "description": "d", "pii": True}], "fields[0].field"),
        ([{"name": "a", "dtype": "string", "description": "d"}, {"name": "a", "dtype": "date", "description": "e"}],
         "fields[1].name"),
    ],
)
def test_art10_schema_validation_names_the_offending_position(fields: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_fields("fields", fields)
    assert info.value.field == field


def test_art35_personal_flag_is_recorded_per_field() -> None:
    resource, _, _ = approved()
    assert resource.personal_fields == ("holder_name",)


# -- grades (art. 12) ----------------------------------------------------------------------------


def test_art12_grade_order_core_important_then_general_4_to_1() -> None:
    assert sorted(Grade, reverse=True) == [
        Grade.CORE, Grade.IMPORTANT, Grade.GENERAL_4, Grade.GENERAL_3, Grade.GENERAL_2, Grade.GENERAL_1
    ]
    assert Grade.CORE.is_stricter_than(Grade.IMPORTANT) and not Grade.GENERAL_1.is_stricter_than(Grade.GENERAL_1)


@given(st.lists(st.sampled_from(Grade), min_size=1))
def test_art12_strictest_of_grades_is_their_max_and_at_least_each(grades: list[Grade]) -> None:
    top = Grade.strictest(grades)
    assert top == max(grades)
    assert top in grades
    assert all(top >= g and not g.is_stricter_than(top) for g in grades)


def test_art12_strictest_of_nothing_is_refused() -> None:
    with pytest.raises(InvalidInput):
        Grade.strictest([])


def test_art12_only_general_grades_are_operable() -> None:
    assert {g for g in Grade if g.is_operable} == {Grade.GENERAL_1, Grade.GENERAL_2, Grade.GENERAL_3, Grade.GENERAL_4}


# -- bureau review (art. 5, 10) --------------------------------------------------------------


def test_art10_new_entry_awaits_bureau_review() -> None:
    provider, clerk = water()
    resource = compiled(provider, clerk)
    assert resource.status is ResourceStatus.SUBMITTED
    assert resource.id == CatalogResource.create_id(provider.id, "Meter readings")


def test_art10_rejection_needs_a_reason_and_revision_resubmits() -> None:
    provider, clerk = water()
    resource = compiled(provider, clerk)
    with pytest.raises(InvalidInput) as info:
        resource.review(approved=False, reason=" ", by=BUREAU)
    assert info.value.field == "reason"
    resource.review(approved=False, reason="grade too low for holder names", by=BUREAU)
    assert resource.status is ResourceStatus.REJECTED
    resource.revise(
        provider=provider, description="Monthly readings", category="utilities", fields=FIELDS,
        grade="general_3", openness="conditional", update_frequency="monthly", by=clerk,
    )
    assert (resource.status, resource.grade, resource.openness) == (
        ResourceStatus.SUBMITTED, Grade.GENERAL_3, Openness.CONDITIONAL
    )


def test_art10_only_rejected_entries_are_revised_and_only_submitted_ones_reviewed() -> None:
    resource, provider, clerk = approved()
    before = unchanged(resource)
    with pytest.raises(InvalidState):
        resource.revise(
            provider=provider, description="x", category="y", fields=FIELDS, grade="general_1",
            openness="unconditional", update_frequency="daily", by=clerk,
        )
    with pytest.raises(InvalidState):
        resource.review(approved=False, reason="changed my mind", by=BUREAU)
    assert unchanged(resource) == before


# -- versions (art. 10-11) ---------------------------------------------------------------------


def test_art10_versions_only_for_approved_entries() -> None:
    provider, clerk = water()
    resource = compiled(provider, clerk)
    with pytest.raises(ResourceNotApproved):
        resource.register_version(
            provider=provider, content_hash=sha("a"), row_count=1, schema=resource.field_names, at=AT, by=clerk
        )


def test_art11_versions_are_numbered_and_content_addressed() -> None:
    resource, provider, clerk = approved()
    for n, text in enumerate(["a", "b", "c"], start=1):
        resource.register_version(
            provider=provider, content_hash=sha(text).upper(), row_count=n * 10, schema=resource.field_names,
            at=AT, by=clerk,
        )
    assert [(v.number, v.content_hash, v.row_count) for v in resource.versions] == [
        (1, sha("a"), 10), (2, sha("b"), 20), (3, sha("c"), 30)
    ]
    with pytest.raises(DuplicateVersion):
        resource.register_version(
            provider=provider, content_hash=sha("b"), row_count=5, schema=resource.field_names, at=AT, by=clerk
        )


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"content_hash": "abc"}, InvalidInput, "content_hash"),
        ({"content_hash": "g" * 64}, InvalidInput, "content_hash"),
        ({"row_count": -1}, InvalidInput, "row_count"),
        ({"row_count": 1.5}, InvalidInput, "row_count"),
        ({"schema": ["district", "consumption_m3"]}, SchemaMismatch, "schema"),
        ({"schema": ["district", "consumption_m3", "holder_name", "extra"]}, SchemaMismatch, "schema"),
        ({"schema": {"district": "category", "consumption_m3": "integer", "holder_name": "string"}},
         SchemaMismatch, "schema"),
        ({"schema": "district"}, InvalidInput, "schema"),
    ],
)
def test_art11_bad_version_is_refused_and_changes_nothing(
    changes: dict[str, Any], error: type[InvalidInput], field: str
) -> None:
    resource, provider, clerk = approved()
    before = unchanged(resource)
    values: dict[str, Any] = {"content_hash": sha("x"), "row_count": 3, "schema": list(resource.field_names)}
    values.update(changes)
    with pytest.raises(error) as info:
        resource.register_version(provider=provider, at=AT, by=clerk, **values)
    assert info.value.field == field and info.value.code == error.code
    assert unchanged(resource) == before


def test_art11_schema_matches_in_any_column_order_with_types() -> None:
    resource, provider, clerk = approved()
    schema: dict[str, FieldType | str] = {
        "holder_name": "string", "district": FieldType.CATEGORY, "consumption_m3": "float"
    }
    resource.register_version(provider=provider, content_hash=sha("x"), row_count=3, schema=schema, at=AT, by=clerk)
    assert len(resource.versions) == 1


# -- supply consent (art. 14) -----------------------------------------------------------------


def test_art14_supply_request_then_provider_consent() -> None:
    resource, provider, clerk = approved()
    product = uuid4()
    assert not resource.consent_granted(product)
    resource.request_supply(product_id=product, by=PM)
    assert resource.supply_status(product) is SupplyStatus.PENDING and not resource.consent_granted(product)
    resource.decide_supply(provider=provider, product_id=product, granted=True, reason="", by=clerk)
    assert resource.consent_granted(product)
    assert not resource.consent_granted(uuid4())


def test_art14_refusal_needs_reason_and_may_be_requested_again() -> None:
    resource, provider, clerk = approved()
    product = uuid4()
    resource.request_supply(product_id=product, by=PM)
    with pytest.raises(InvalidInput):
        resource.decide_supply(provider=provider, product_id=product, granted=False, reason="", by=clerk)
    resource.decide_supply(provider=provider, product_id=product, granted=False, reason="scope unclear", by=clerk)
    assert resource.supply_status(product) is SupplyStatus.REFUSED
    resource.request_supply(product_id=product, by=PM)
    assert resource.supply_status(product) is SupplyStatus.PENDING


def test_art14_duplicate_request_and_decision_without_request_are_refused() -> None:
    resource, provider, clerk = approved()
    product = uuid4()
    with pytest.raises(SupplyNotPending):
        resource.decide_supply(provider=provider, product_id=product, granted=True, reason="", by=clerk)
    resource.request_supply(product_id=product, by=PM)
    with pytest.raises(AlreadyExists):
        resource.request_supply(product_id=product, by=PM)
    resource.decide_supply(provider=provider, product_id=product, granted=True, reason="", by=clerk)
    with pytest.raises(SupplyNotPending):
        resource.decide_supply(provider=provider, product_id=product, granted=False, reason="no", by=clerk)


def test_art14_only_the_providers_staff_consent() -> None:
    resource, _, _ = approved()
    product = uuid4()
    resource.request_supply(product_id=product, by=PM)
    other = Provider.register(name="Baotou Gas", kind="gas", contact_email="a@gas.cn", by=BUREAU)
    other.add_staff(user_id="gasclerk", by=ADMIN)
    gas_clerk = Actor("gasclerk", Role.PROVIDER_STAFF, provider_id=other.id)
    with pytest.raises(NotProviderStaff):
        resource.decide_supply(provider=other, product_id=product, granted=True, reason="", by=gas_clerk)


def test_art14_no_supply_request_for_unapproved_entry() -> None:
    provider, clerk = water()
    resource = compiled(provider, clerk)
    with pytest.raises(ResourceNotApproved):
        resource.request_supply(product_id=uuid4(), by=PM)


@pytest.mark.parametrize(
    ("grade", "openness"), [("general_1", "not_open"), ("important", "unconditional"), ("core", "conditional")]
)
def test_art14_no_supply_request_for_data_that_may_not_be_operated(grade: str, openness: str) -> None:
    resource, _, _ = approved(grade=grade, openness=openness)
    with pytest.raises(SourceNotOperable):
        resource.request_supply(product_id=uuid4(), by=PM)


# -- state machine: no command sequence reaches an invalid entry ----------------------------------


class CatalogResourceMachine(RuleBasedStateMachine):
    """Random review, revision, version and supply commands; refused ones change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.provider, self.clerk = water()
        self.resource = compiled(self.provider, self.clerk)
        self.products = [UUID(int=i) for i in range(1, 4)]
        self.ever_approved_with_versions = False

    def attempt(self, command: Any) -> bool:
        self.resource.collect_events()  # keeps the copied state small; a refused command must add none
        before = unchanged(self.resource)
        try:
            command()
        except DomainError:
            assert unchanged(self.resource) == before
            return False
        return True

    @rule(approved=st.booleans(), reason=st.sampled_from(["", "ok", "wrong grade"]))
    def review(self, approved: bool, reason: str) -> None:
        was = self.resource.status
        done = self.attempt(lambda: self.resource.review(approved=approved, reason=reason, by=BUREAU))
        assert done == (was is ResourceStatus.SUBMITTED and (approved or reason != ""))

    @rule(grade=st.sampled_from(Grade), openness=st.sampled_from(Openness))
    def revise(self, grade: Grade, openness: Openness) -> None:
        was = self.resource.status
        done = self.attempt(
            lambda: self.resource.revise(
                provider=self.provider, description="d", category="c", fields=FIELDS, grade=grade,
                openness=openness, update_frequency="daily", by=self.clerk,
            )
        )
        assert done == (was is ResourceStatus.REJECTED)

    @rule(content=st.sampled_from(["a", "b", "c", "d"]), rows=st.integers(min_value=-1, max_value=5))
    def register_version(self, content: str, rows: int) -> None:
        self.attempt(
            lambda: self.resource.register_version(
                provider=self.provider, content_hash=sha(content), row_count=rows,
                schema=self.resource.field_names, at=AT, by=self.clerk,
            )
        )

    @rule(index=st.integers(min_value=0, max_value=2))
    def request_supply(self, index: int) -> None:
        self.attempt(lambda: self.resource.request_supply(product_id=self.products[index], by=PM))

    @rule(index=st.integers(min_value=0, max_value=2), granted=st.booleans())
    def decide_supply(self, index: int, granted: bool) -> None:
        self.attempt(
            lambda: self.resource.decide_supply(
                provider=self.provider, product_id=self.products[index], granted=granted, reason="r", by=self.clerk
            )
        )

    @precondition(lambda self: self.resource.is_approved)
    @rule()
    def approved_entry_is_never_revised(self) -> None:
        assert not self.attempt(
            lambda: self.resource.revise(
                provider=self.provider, description="d", category="c", fields=FIELDS, grade="general_1",
                openness="unconditional", update_frequency="daily", by=self.clerk,
            )
        )

    @invariant()
    def versions_only_on_approved_entries_numbered_and_unique(self) -> None:
        versions = self.resource.versions
        if versions:
            assert self.resource.is_approved
        assert [v.number for v in versions] == list(range(1, len(versions) + 1))
        assert len({v.content_hash for v in versions}) == len(versions)
        assert all(v.row_count >= 0 for v in versions)

    @invariant()
    def supply_only_for_approved_operable_entries(self) -> None:
        if self.resource.supply:
            assert self.resource.is_approved and self.resource.is_operable

    @invariant()
    def rejected_entry_has_a_reason(self) -> None:
        if self.resource.status is ResourceStatus.REJECTED:
            assert self.resource.review_reason


CatalogResourceMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestArt10CatalogResourceStateMachine = CatalogResourceMachine.TestCase
