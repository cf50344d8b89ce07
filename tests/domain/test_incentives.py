"""Contribution evaluation per provider and period (art. 25)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import domain.incentives as incentives
from domain.errors import DomainError, InvalidInput, PermissionDenied
from domain.identity import Actor, Role
from domain.incentives import (
    ContributionEvaluation,
    ScoreComponent,
    parse_components,
    validate_period,
    weighted_score,
)

PROVIDER = UUID("00000000-0000-0000-0000-00000000f001")
T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
ADMIN = Actor("adm", Role.OPERATOR_ADMIN)
ADMIN2 = Actor("adm2", Role.OPERATOR_ADMIN)
PM = Actor("pm", Role.PRODUCT_MANAGER)
SUPERVISOR = Actor("sup", Role.SUPERVISOR)

ART25 = [
    {"name": "data_quality", "value": 80, "weight": 0.5, "explanation": "2 issues, both rectified on time"},
    {"name": "application", "value": 60, "weight": 0.3, "explanation": "4 units in production"},
    {"name": "monetisation", "value": 40, "weight": 0.2, "explanation": "revenue share 12%"},
]


def published(components: Any = None, period: str = "2024") -> ContributionEvaluation:
    return ContributionEvaluation.publish(provider_id=PROVIDER, period=period, components=components or ART25,
                                          by=ADMIN, at=T0)


# -- periods ------------------------------------------------------------------------------------
@pytest.mark.parametrize("period", ["2024", "2024-Q1", "2024-Q4", "2024-01", "2024-12", " 2024-q2 "])
def test_art25_period_is_a_year_quarter_or_month(period: str) -> None:
    assert validate_period(period) == period.strip().upper()


@pytest.mark.parametrize("period", ["24", "2024-13", "2024-00", "2024-Q5", "2024-Q0", "2024-1", "2024/01",
                                    "1999", "3000", "", "2024-W01", 2024, None])
def test_art25_bad_period_is_refused_naming_period(period: object) -> None:
    with pytest.raises(InvalidInput) as e:
        validate_period(period)
    assert e.value.field == "period"


@given(st.integers(2000, 2999), st.one_of(st.none(), st.integers(1, 4).map(lambda q: f"-Q{q}"),
                                          st.integers(1, 12).map(lambda m: f"-{m:02d}")))
def test_every_well_formed_period_is_accepted(year: int, suffix: str | None) -> None:
    period = f"{year}{suffix or ''}"
    assert validate_period(period) == period


@given(st.text(max_size=10))
def test_period_parser_accepts_only_the_three_shapes(text: str) -> None:
    try:
        period = validate_period(text)
    except InvalidInput:
        return
    assert len(period) in (4, 7)
    assert period[:4].isdigit()


# -- components and score -----------------------------------------------------------------------
def test_art25_score_is_the_weighted_sum_computed_in_the_domain() -> None:
    evaluation = published()
    assert evaluation.score == pytest.approx(80 * 0.5 + 60 * 0.3 + 40 * 0.2)
    assert [c.name for c in evaluation.components] == ["data_quality", "application", "monetisation"]
    assert evaluation.provider_id == PROVIDER and evaluation.period == "2024"
    [event] = evaluation.collect_events()
    assert event.score == evaluation.score  # type: ignore[attr-defined]


def test_art25_id_is_derived_from_provider_and_period() -> None:
    assert published().id == ContributionEvaluation.create_id(PROVIDER, "2024")
    assert published(period="2024-Q1").id != published(period="2024").id


@pytest.mark.parametrize(
    ("field", "components"),
    [
        ("components", []),
        ("components", "data_quality"),
        ("components", {"name": "x"}),
        ("components", None),
        ("components", [{**ART25[0], "weight": 0.6}, *ART25[1:]]),  # sums to 1.1
        ("components", [ART25[0], {**ART25[1], "name": "Data_Quality"}, ART25[2]]),  # repeated name
        ("components[0].value", [{**ART25[0], "value": 101}, *ART25[1:]]),
        ("components[0].value", [{**ART25[0], "value": -0.1}, *ART25[1:]]),
        ("components[0].value", [{**ART25[0], "value": math.nan}, *ART25[1:]]),
        ("components[1].weight", [ART25[0], {**ART25[1], "weight": 1.3}, ART25[2]]),
        ("components[1].weight", [ART25[0], {**ART25[1], "weight": True}, ART25[2]]),
        ("components[2].name", [*ART25[:2], {**ART25[2], "name": " "}]),
        ("components[2].explanation", [*ART25[:2], {**ART25[2], "explanation": ""}]),
        ("components[0]", [{**ART25[0], "colour": "red"}, *ART25[1:]]),
        ("components[1]", [ART25[0], 42, ART25[2]]),
    ],
)
def test_art25_components_are_validated_naming_the_field(field: str, components: object) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_components(components)
    assert e.value.field == field


def test_components_may_be_value_objects() -> None:
    parsed = parse_components([ScoreComponent("all", 70, 1, "single criterion")])
    assert parsed == (ScoreComponent("all", 70.0, 1.0, "single criterion"),)


weights = st.lists(st.integers(1, 1000), min_size=1, max_size=8)


@given(weights, st.lists(st.floats(0, 100), min_size=8, max_size=8))
def test_normalised_weights_are_accepted_and_score_lies_between_the_values(raw: list[int], values: list[float]) -> None:
    total = sum(raw)
    components = [{"name": f"c{i}", "value": values[i], "weight": w / total, "explanation": "e"}
                  for i, w in enumerate(raw)]
    assume(abs(math.fsum(c["weight"] for c in components) - 1) <= 1e-9)  # type: ignore[misc]
    parsed = parse_components(components)
    score = weighted_score(parsed)
    used = values[: len(raw)]
    assert min(used) - 1e-9 <= score <= max(used) + 1e-9
    assert score == pytest.approx(sum(v * w / total for v, w in zip(used, raw, strict=True)), abs=1e-9)


@given(weights, st.floats(1e-7, 0.1))
def test_weights_off_by_more_than_the_tolerance_are_refused(raw: list[int], error: float) -> None:
    total = sum(raw)
    components = [{"name": f"c{i}", "value": 50, "weight": w / total, "explanation": "e"} for i, w in enumerate(raw)]
    heaviest = max(range(len(raw)), key=lambda i: raw[i])  # >= 1/8, so subtracting keeps it >= 0
    components[heaviest]["weight"] -= error  # type: ignore[operator]
    with pytest.raises(InvalidInput) as e:
        parse_components(components)
    assert e.value.field == "components"


# -- who publishes and revises ------------------------------------------------------------------
@pytest.mark.parametrize("actor", [PM, SUPERVISOR, Actor("ps", Role.PROVIDER_STAFF, provider_id=PROVIDER)])
def test_art25_only_operator_admin_publishes(actor: Actor) -> None:
    with pytest.raises(PermissionDenied):
        ContributionEvaluation.publish(provider_id=PROVIDER, period="2024", components=ART25, by=actor, at=T0)
    evaluation = published()
    with pytest.raises(PermissionDenied):
        evaluation.revise(components=[*ART25[:2], {**ART25[2], "value": 50}], reason="r", by=actor, at=T0)
    assert evaluation.revision_count == 0


def test_art25_revision_keeps_history_and_needs_a_reason() -> None:
    evaluation = published()
    first_score = evaluation.score
    new = [ART25[0], ART25[1], {**ART25[2], "value": 90, "explanation": "late invoices counted"}]
    with pytest.raises(InvalidInput) as e:
        evaluation.revise(components=new, reason="  ", by=ADMIN2, at=T0)
    assert e.value.field == "reason"
    with pytest.raises(InvalidInput) as e:
        evaluation.revise(components=ART25, reason="no change", by=ADMIN2, at=T0)
    assert e.value.field == "components"
    evaluation.revise(components=new, reason="Q4 invoices were missing", by=ADMIN2, at=T0 + timedelta(days=3))
    assert evaluation.score == pytest.approx(first_score + 0.2 * 50)
    assert [v.number for v in evaluation.history] == [1, 2]
    assert evaluation.history[0].score == first_score
    assert evaluation.history[1].reason == "Q4 invoices were missing"
    assert evaluation.history[1].user_id == "adm2"
    assert evaluation.revision_count == 1


def test_art25_evaluations_cannot_be_deleted() -> None:
    assert not any(hasattr(ContributionEvaluation, name) for name in ("delete", "remove", "withdraw", "discard"))


def test_art8_replay_keeps_the_recorded_score_even_if_the_formula_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    evaluation = published()
    evaluation.revise(components=[{**ART25[0], "value": 100}, *ART25[1:]], reason="recount", by=ADMIN, at=T0)
    events = evaluation.collect_events()
    monkeypatch.setattr(incentives, "weighted_score", lambda _components: -1.0)
    copy: Any = None
    for e in events:
        copy = e.mutate(copy)
    assert isinstance(copy, ContributionEvaluation)
    assert [v.score for v in copy.history] == [v.score for v in evaluation.history]
    assert copy.history == evaluation.history


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(InvalidInput) as e:
        ContributionEvaluation.publish(provider_id=PROVIDER, period="2024", components=ART25, by=ADMIN,
                                       at=datetime(2025, 1, 1))
    assert e.value.field == "at"


# -- no command sequence reaches an invalid state -----------------------------------------------------
component_lists = st.lists(
    st.tuples(st.floats(0, 100), st.integers(1, 20)), min_size=1, max_size=5
).map(lambda items: [
    {"name": f"c{i}", "value": v, "weight": w / sum(x[1] for x in items), "explanation": "why"}
    for i, (v, w) in enumerate(items)
])


class EvaluationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.evaluation = published()
        self.revisions = 0
        self.clock = T0

    @rule(actor=st.sampled_from([ADMIN, ADMIN2, PM, SUPERVISOR]), components=component_lists,
          reason=st.sampled_from(["", "correction"]), broken_weight=st.booleans())
    def revise(self, actor: Actor, components: list[dict[str, Any]], reason: str, broken_weight: bool) -> None:
        if broken_weight:
            components[0]["weight"] += 0.01
        before = list(self.evaluation.history)
        self.clock += timedelta(days=1)
        try:
            self.evaluation.revise(components=components, reason=reason, by=actor, at=self.clock)
        except DomainError:
            assert self.evaluation.history == before
        else:
            assert actor.role is Role.OPERATOR_ADMIN and reason and not broken_weight
            self.revisions += 1

    @invariant()
    def consistent(self) -> None:
        evaluation = self.evaluation
        assert len(evaluation.history) == 1 + self.revisions == evaluation.version
        assert [v.number for v in evaluation.history] == list(range(1, len(evaluation.history) + 1))
        for version in evaluation.history:
            assert abs(math.fsum(c.weight for c in version.components) - 1) <= 1e-9
            assert version.score == weighted_score(version.components)
            assert 0 <= version.score <= 100


TestEvaluationMachine = EvaluationMachine.TestCase
TestEvaluationMachine.settings = settings(max_examples=50, stateful_step_count=15, deadline=None)
