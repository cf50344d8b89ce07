"""Contribution evaluation use cases on a real SQLite file and a real PostgreSQL server (art. 25)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from domain.incentives import ContributionEvaluation, ScoreComponent
from marketplace.bootstrap import Marketplace, build
from tests.scenario import Staff, provider, refused, staff

World = tuple[Marketplace, Staff, UUID]

COMPONENTS: list[dict[str, Any]] = [
    {"name": "data_quality", "value": 85.0, "weight": 0.4, "explanation": "1 issue, rectified on time"},
    {"name": "application", "value": 70.0, "weight": 0.35, "explanation": "3 units in production"},
    {"name": "monetisation", "value": 30.0, "weight": 0.25, "explanation": "operation fees 42,000 yuan"},
]


@pytest.fixture
def world(marketplace: Marketplace) -> World:
    people = staff(marketplace)
    provider_id, _ = provider(marketplace, people)
    return marketplace, people, provider_id


def test_art25_admin_publishes_a_score_per_provider_and_period(world: World) -> None:
    mp, people, provider_id = world
    eid = mp.incentives.publish_evaluation(people.admin, provider_id=provider_id, period="2024-q4",
                                           components=COMPONENTS)
    assert eid == ContributionEvaluation.create_id(provider_id, "2024-Q4") == mp.incentives.evaluation_id(
        provider_id, "2024-Q4")
    reopened = build(mp.config)
    try:
        evaluation = reopened.incentives.get(ContributionEvaluation, eid)
    finally:
        reopened.close()
    assert evaluation.period == "2024-Q4" and evaluation.provider_id == provider_id
    assert evaluation.score == pytest.approx(85 * 0.4 + 70 * 0.35 + 30 * 0.25)
    assert evaluation.components == tuple(ScoreComponent(**c) for c in COMPONENTS)
    assert evaluation.history[0].user_id == people.admin.user_id


def test_art25_one_evaluation_per_provider_and_period(world: World) -> None:
    mp, people, provider_id = world
    mp.incentives.publish_evaluation(people.admin, provider_id=provider_id, period="2024", components=COMPONENTS)
    with refused(mp, AlreadyExists):
        mp.incentives.publish_evaluation(people.admin, provider_id=provider_id, period="2024", components=COMPONENTS)
    mp.incentives.publish_evaluation(people.admin, provider_id=provider_id, period="2024-12", components=COMPONENTS)


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("period", {"period": "2024-13"}),
        ("period", {"period": "last year"}),
        ("components", {"components": []}),
        ("components", {"components": [{**COMPONENTS[0], "weight": 0.5}, *COMPONENTS[1:]]}),
        ("components[2].value", {"components": [*COMPONENTS[:2], {**COMPONENTS[2], "value": 130}]}),
        ("components[0].explanation", {"components": [{**COMPONENTS[0], "explanation": ""}, *COMPONENTS[1:]]}),
        ("provider_id", {"provider_id": "provider-7"}),
    ],
)
def test_art25_bad_input_names_the_field_and_changes_nothing(
    world: World, field: str, overrides: dict[str, Any]
) -> None:
    mp, people, provider_id = world
    args: dict[str, Any] = {"provider_id": provider_id, "period": "2024", "components": COMPONENTS}
    args.update(overrides)
    with refused(mp, InvalidInput) as info:
        mp.incentives.publish_evaluation(people.admin, **args)
    assert info.value.field == field


def test_art25_unknown_provider_is_not_found(world: World) -> None:
    mp, people, _ = world
    with refused(mp, NotFound):
        mp.incentives.publish_evaluation(people.admin, provider_id=uuid4(), period="2024", components=COMPONENTS)


def test_art25_only_operator_admin_publishes_or_revises(world: World) -> None:
    mp, people, provider_id = world
    _, clerk = provider(mp, people)
    for actor in (people.product_manager, people.reviewer, people.supervisor, clerk):
        with refused(mp, PermissionDenied):
            mp.incentives.publish_evaluation(actor, provider_id=provider_id, period="2024", components=COMPONENTS)
    eid = mp.incentives.publish_evaluation(people.admin, provider_id=provider_id, period="2024", components=COMPONENTS)
    for actor in (people.product_manager, clerk):
        with refused(mp, PermissionDenied):
            mp.incentives.revise_evaluation(actor, eid, components=COMPONENTS[::-1], reason="mine")


def test_art25_revision_keeps_every_version(world: World) -> None:
    mp, people, provider_id = world
    eid = mp.incentives.publish_evaluation(people.admin, provider_id=provider_id, period="2024", components=COMPONENTS)
    revised = [*COMPONENTS[:2], {**COMPONENTS[2], "value": 60.0, "explanation": "December invoices included"}]
    mp.incentives.revise_evaluation(people.admin, eid, components=revised, reason="December invoices were missing")
    evaluation = mp.incentives.get(ContributionEvaluation, eid)
    assert [v.number for v in evaluation.history] == [1, 2]
    assert evaluation.history[0].score == pytest.approx(85 * 0.4 + 70 * 0.35 + 30 * 0.25)
    assert evaluation.score == pytest.approx(85 * 0.4 + 70 * 0.35 + 60 * 0.25)
    assert evaluation.history[1].reason == "December invoices were missing"
    names = [type(e).__name__ for e in mp.app.repository.event_store.get(eid)]
    assert names == ["Published", "Revised"]


def test_revise_refusals_change_nothing(world: World) -> None:
    mp, people, provider_id = world
    eid = mp.incentives.publish_evaluation(people.admin, provider_id=provider_id, period="2024", components=COMPONENTS)
    with refused(mp, InvalidInput) as info:
        mp.incentives.revise_evaluation(people.admin, eid, components=COMPONENTS[::-1], reason=" ")
    assert info.value.field == "reason"
    with refused(mp, InvalidInput) as info:
        mp.incentives.revise_evaluation(people.admin, eid, components=COMPONENTS, reason="nothing new")
    assert info.value.field == "components"
    with refused(mp, InvalidInput) as info:
        overweight = [{**COMPONENTS[0], "weight": 1.0}, *COMPONENTS[1:]]
        mp.incentives.revise_evaluation(people.admin, eid, components=overweight, reason="oops")
    assert info.value.field == "components"
    with refused(mp, NotFound):
        mp.incentives.revise_evaluation(people.admin, uuid4(), components=COMPONENTS, reason="x")
    with refused(mp, NotFound):
        mp.incentives.revise_evaluation(people.admin, provider_id, components=COMPONENTS, reason="wrong kind of id")
