"""Catalog use cases on real stores (SQLite and PostgreSQL): art. 3, 5, 10-14.

Every refused command is checked with ``refused``: the specific error, and no new event.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from domain.catalog import (
    CatalogResource,
    DuplicateVersion,
    Grade,
    NotProviderStaff,
    Provider,
    ProviderKind,
    ResourceNotApproved,
    ResourceStatus,
    SchemaMismatch,
    SupplyNotPending,
    SupplyStatus,
)
from domain.errors import AlreadyExists, InvalidInput, InvalidState, NotFound, PermissionDenied
from domain.identity import Actor, Role
from domain.products import DataProduct
from marketplace.bootstrap import Marketplace
from tests.scenario import approved_resource, default_fields, digest, provider, refused, staff


def compile_args(provider_id: UUID | str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "provider_id": provider_id, "name": "Meter readings", "description": "Monthly readings",
        "category": "utilities", "fields": default_fields(), "grade": "general_2", "openness": "unconditional",
        "update_frequency": "monthly",
    }
    values.update(overrides)
    return values


# -- providers ----------------------------------------------------------------------------------------


def test_art3_register_provider_and_refusals(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid = mp.catalog.register_provider(people.supervisor, name=" Baotou Power ", kind="power", contact_email="a@p.cn")
    p = mp.catalog.get(Provider, pid)
    assert (p.name, p.kind, p.staff) == ("Baotou Power", ProviderKind.POWER, [])
    assert mp.catalog.provider_id("Baotou Power") == pid
    with refused(mp, PermissionDenied):
        mp.catalog.register_provider(people.product_manager, name="Baotou Gas", kind="gas", contact_email="a@g.cn")
    with refused(mp, AlreadyExists):
        mp.catalog.register_provider(people.admin, name="Baotou Power", kind="power", contact_email="b@p.cn")
    with refused(mp, InvalidInput) as info:
        mp.catalog.register_provider(people.admin, name="Baotou Gas", kind="bakery", contact_email="a@g.cn")
    assert info.value.field == "kind"
    with refused(mp, InvalidInput) as info:
        mp.catalog.register_provider(people.admin, name="", kind="gas", contact_email="a@g.cn")
    assert info.value.field == "name"


def test_art15_provider_staff_roster_and_refusals(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid, clerk = provider(mp, people)
    mp.catalog.add_provider_staff(people.supervisor, pid, user_id="second-clerk")
    assert mp.catalog.get(Provider, pid).staff == ["water-clerk", "second-clerk"]
    with refused(mp, PermissionDenied):
        mp.catalog.add_provider_staff(clerk, pid, user_id="my-friend")
    with refused(mp, AlreadyExists):
        mp.catalog.add_provider_staff(people.admin, pid, user_id="second-clerk")
    with refused(mp, NotFound):
        mp.catalog.add_provider_staff(people.admin, uuid4(), user_id="x")
    with refused(mp, NotFound):
        mp.catalog.add_provider_staff(people.admin, "not-an-id", user_id="x")
    with refused(mp, InvalidInput) as info:
        mp.catalog.add_provider_staff(people.admin, pid, user_id=" ")
    assert info.value.field == "user_id"
    with refused(mp, InvalidInput):
        mp.catalog.remove_provider_staff(people.admin, pid, user_id="ghost")
    mp.catalog.remove_provider_staff(people.admin, pid, user_id="second-clerk")
    assert mp.catalog.get(Provider, pid).staff == ["water-clerk"]


# -- compiling and review (art. 5, 10) -------------------------------------------------------------


def test_art10_compile_resource_by_provider_staff(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid, clerk = provider(mp, people)
    rid = mp.catalog.compile_resource(clerk, **compile_args(pid, fields=default_fields(personal=True)))
    r = mp.catalog.get(CatalogResource, rid)
    assert r.status is ResourceStatus.SUBMITTED and r.provider_id == pid
    assert r.personal_fields == ("holder_name",) and r.grade is Grade.GENERAL_2


def test_art10_compile_refusals_leave_store_unchanged(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid, clerk = provider(mp, people)
    other_pid, other_clerk = provider(mp, people, name="Baotou Gas", kind="gas", staff_user="gas-clerk")
    mp.catalog.compile_resource(clerk, **compile_args(pid))
    with refused(mp, PermissionDenied):  # wrong role
        mp.catalog.compile_resource(people.product_manager, **compile_args(pid, name="Other"))
    with refused(mp, PermissionDenied):  # staff of another provider
        mp.catalog.compile_resource(other_clerk, **compile_args(pid, name="Other"))
    with refused(mp, NotProviderStaff):  # right provider id, not on the roster
        mp.catalog.compile_resource(Actor("impostor", Role.PROVIDER_STAFF, provider_id=pid),
                                    **compile_args(pid, name="Other"))
    with refused(mp, AlreadyExists):
        mp.catalog.compile_resource(clerk, **compile_args(pid))
    with refused(mp, NotFound):
        ghost = uuid4()
        mp.catalog.compile_resource(Actor("g", Role.PROVIDER_STAFF, provider_id=ghost), **compile_args(ghost))
    with refused(mp, InvalidInput) as info:
        mp.catalog.compile_resource(clerk, **compile_args("nope", name="Other"))
    assert info.value.field == "provider_id"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"fields": []}, "fields"),
        ({"fields": [{"name": "a b", "dtype": "string", "description": "d"}]}, "fields[0].name"),
        ({"grade": "secret"}, "grade"),
        ({"openness": "maybe"}, "openness"),
        ({"update_frequency": "sometimes"}, "update_frequency"),
        ({"description": ""}, "description"),
        ({"category": ""}, "category"),
    ]
    for bad, field in cases:
        with refused(mp, InvalidInput) as info:
            mp.catalog.compile_resource(clerk, **compile_args(pid, name="Other", **bad))
        assert info.value.field == field
    assert other_pid != pid


def test_art10_bureau_review_reject_revise_approve(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid, clerk = provider(mp, people)
    rid = mp.catalog.compile_resource(clerk, **compile_args(pid))
    with refused(mp, PermissionDenied):
        mp.catalog.review_resource(people.admin, rid, approved=True, reason="")
    with refused(mp, PermissionDenied):
        mp.catalog.review_resource(clerk, rid, approved=True, reason="")
    with refused(mp, InvalidInput) as info:
        mp.catalog.review_resource(people.supervisor, rid, approved=False, reason="")
    assert info.value.field == "reason"
    with refused(mp, NotFound):
        mp.catalog.review_resource(people.supervisor, uuid4(), approved=True, reason="")
    with refused(mp, InvalidState):  # only rejected entries are revised
        mp.catalog.revise_resource(clerk, rid, description="d", category="c", fields=default_fields(),
                                   grade="general_1", openness="unconditional", update_frequency="daily")
    mp.catalog.review_resource(people.supervisor, rid, approved=False, reason="describe the meters")
    assert mp.catalog.get(CatalogResource, rid).status is ResourceStatus.REJECTED
    with refused(mp, InvalidState):
        mp.catalog.review_resource(people.supervisor, rid, approved=True, reason="")
    with refused(mp, InvalidInput) as info:
        mp.catalog.revise_resource(clerk, rid, description="d", category="c", fields=[], grade="general_1",
                                   openness="unconditional", update_frequency="daily")
    assert info.value.field == "fields"
    with refused(mp, PermissionDenied):
        mp.catalog.revise_resource(people.product_manager, rid, description="d", category="c",
                                   fields=default_fields(), grade="general_1", openness="unconditional",
                                   update_frequency="daily")
    mp.catalog.revise_resource(clerk, rid, description="Readings of household meters", category="utilities",
                               fields=default_fields(), grade="general_1", openness="unconditional",
                               update_frequency="daily")
    mp.catalog.review_resource(people.supervisor, rid, approved=True, reason="")
    r = mp.catalog.get(CatalogResource, rid)
    assert (r.status, r.grade, r.description) == (
        ResourceStatus.APPROVED, Grade.GENERAL_1, "Readings of household meters"
    )


# -- versions (art. 10-11) ----------------------------------------------------------------------


def test_art11_register_resource_version_and_refusals(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    pid, clerk = provider(mp, people)
    rid = mp.catalog.compile_resource(clerk, **compile_args(pid))
    with refused(mp, ResourceNotApproved):
        mp.catalog.register_resource_version(clerk, rid, content_hash=digest("a"), row_count=5)
    mp.catalog.review_resource(people.supervisor, rid, approved=True, reason="")
    mp.catalog.register_resource_version(clerk, rid, content_hash=digest("a"), row_count=5)
    mp.catalog.register_resource_version(
        clerk, rid, content_hash=digest("b"), row_count=6, schema=["consumption_m3", "district", "month"]
    )
    assert [(v.number, v.row_count) for v in mp.catalog.get(CatalogResource, rid).versions] == [(1, 5), (2, 6)]
    with refused(mp, DuplicateVersion):
        mp.catalog.register_resource_version(clerk, rid, content_hash=digest("a"), row_count=5)
    with refused(mp, SchemaMismatch):
        mp.catalog.register_resource_version(clerk, rid, content_hash=digest("c"), row_count=5, schema=["district"])
    with refused(mp, InvalidInput) as info:
        mp.catalog.register_resource_version(clerk, rid, content_hash="md5:abc", row_count=5)
    assert info.value.field == "content_hash"
    with refused(mp, InvalidInput) as info:
        mp.catalog.register_resource_version(clerk, rid, content_hash=digest("c"), row_count=-3)
    assert info.value.field == "row_count"
    with refused(mp, PermissionDenied):
        mp.catalog.register_resource_version(people.supervisor, rid, content_hash=digest("c"), row_count=5)
    with refused(mp, NotFound):
        mp.catalog.register_resource_version(clerk, uuid4(), content_hash=digest("c"), row_count=5)


# -- supply consent (art. 14) -------------------------------------------------------------------


def test_art14_decide_supply_and_refusals(marketplace: Marketplace) -> None:
    mp = marketplace
    people = staff(mp)
    rid = approved_resource(mp, people)
    clerk = Actor("water-clerk", Role.PROVIDER_STAFF, provider_id=Provider.create_id("Baotou Water Supply Company"))
    product_id = mp.products.build_product(
        people.product_manager, name="District water use", description="d", category="utilities",
        source_ids=[rid], fields=default_fields(), delivery_modes=["sandbox_aggregate"],
    )
    assert mp.catalog.get(CatalogResource, rid).supply_status(product_id) is SupplyStatus.PENDING
    _, gas_clerk = provider(mp, people, name="Baotou Gas", kind="gas", staff_user="gas-clerk")
    with refused(mp, PermissionDenied):
        mp.catalog.decide_supply(people.product_manager, rid, product_id=product_id, granted=True, reason="")
    with refused(mp, PermissionDenied):
        mp.catalog.decide_supply(gas_clerk, rid, product_id=product_id, granted=True, reason="")
    with refused(mp, SupplyNotPending):
        mp.catalog.decide_supply(clerk, rid, product_id=uuid4(), granted=True, reason="")
    with refused(mp, InvalidInput) as info:
        mp.catalog.decide_supply(clerk, rid, product_id=product_id, granted=False, reason="")
    assert info.value.field == "reason"
    with refused(mp, InvalidInput) as info:
        mp.catalog.decide_supply(clerk, rid, product_id="bad", granted=True, reason="")
    assert info.value.field == "product_id"
    with refused(mp, NotFound):
        mp.catalog.decide_supply(clerk, uuid4(), product_id=product_id, granted=True, reason="")
    mp.catalog.decide_supply(clerk, rid, product_id=product_id, granted=True, reason="agreed")
    assert mp.catalog.get(CatalogResource, rid).consent_granted(product_id)
    with refused(mp, SupplyNotPending):
        mp.catalog.decide_supply(clerk, rid, product_id=product_id, granted=False, reason="changed mind")
    assert mp.products.get(DataProduct, product_id).source_ids == (rid,)


def test_art10_resource_survives_reload_and_snapshots(marketplace: Marketplace) -> None:
    """An entry with a long history (snapshots every 50 events) reads back identically."""
    mp = marketplace
    people = staff(mp)
    rid = approved_resource(mp, people, version=False)
    clerk = Actor("water-clerk", Role.PROVIDER_STAFF, provider_id=Provider.create_id("Baotou Water Supply Company"))
    product_id = mp.products.build_product(
        people.product_manager, name="District water use", description="d", category="utilities",
        source_ids=[rid], fields=default_fields(), delivery_modes=["sandbox_aggregate"],
    )
    mp.catalog.decide_supply(clerk, rid, product_id=product_id, granted=True, reason="agreed")
    for n in range(60):
        mp.catalog.register_resource_version(clerk, rid, content_hash=digest(f"v{n}"), row_count=n)
    loaded = mp.catalog.get(CatalogResource, rid)
    assert [v.number for v in loaded.versions] == list(range(1, 61))
    assert loaded.consent_granted(product_id) and loaded.supply[str(product_id)].requested_by == "pm"
    assert loaded.fields[0].name == "district" and loaded.is_approved
    assert mp.app.snapshots is not None
    assert list(mp.app.snapshots.get(rid)), "a snapshot was taken"
