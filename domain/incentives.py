"""Contribution evaluation of providers (art. 25).

Art. 25 rewards participants for their contribution, judged by data quality,
application and monetisation. Once per period the operator admin publishes, for each
provider, a score built from named components (value 0..100 and weight 0..1, weights
summing to 1). The score is computed here, from the components, and recorded on the
event as computed at that moment, so a later change of this code never rewrites a
published score on replay. A published evaluation can be revised with a reason but
never deleted; every version stays in ``history``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput, PermissionDenied, require_text
from domain.feedback import require_time
from domain.identity import Actor, Role

WEIGHT_TOLERANCE = 1e-9
MAX_COMPONENTS = 20
NAME_MAX = 100
EXPLANATION_MAX = 2000
REASON_MAX = 2000
_PERIOD = re.compile(r"^(?P<year>\d{4})(?:-Q(?P<quarter>[1-4])|-(?P<month>0[1-9]|1[0-2]))?$")
MIN_YEAR, MAX_YEAR = 2000, 2999


def validate_period(value: object) -> str:
    """A year ("2024"), a quarter ("2024-Q3") or a month ("2024-07")."""
    if not isinstance(value, str):
        raise InvalidInput("period", f"must be text like 2024, 2024-Q3 or 2024-07, got {value!r}")
    period = value.strip().upper()
    match = _PERIOD.match(period)
    if match is None:
        raise InvalidInput("period", f"must be YYYY, YYYY-Qn (n 1-4) or YYYY-MM, got {value!r}")
    if not MIN_YEAR <= int(match["year"]) <= MAX_YEAR:
        raise InvalidInput("period", f"year must be from {MIN_YEAR} to {MAX_YEAR}, got {match['year']}")
    return period


def _number(field: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(field, f"must be a number from {low:g} to {high:g}, got {value!r}")
    if not low <= value <= high:
        raise InvalidInput(field, f"must be from {low:g} to {high:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ScoreComponent:
    """One named part of a contribution score, e.g. data quality, application, monetisation."""

    name: str
    value: float
    weight: float
    explanation: str


@dataclass(frozen=True)
class EvaluationVersion:
    """One published version of an evaluation: the first publication or a revision."""

    number: int
    components: tuple[ScoreComponent, ...]
    score: float
    reason: str
    user_id: str
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", tuple(self.components))


def parse_components(components: object) -> tuple[ScoreComponent, ...]:
    """Validate components (objects or mappings), naming the exact field that is wrong."""
    if isinstance(components, str | bytes | Mapping) or not isinstance(components, Iterable):
        raise InvalidInput("components", "must be a list of score components")
    items = list(components)
    if not items:
        raise InvalidInput("components", "at least one component is required")
    if len(items) > MAX_COMPONENTS:
        raise InvalidInput("components", f"at most {MAX_COMPONENTS} components, got {len(items)}")
    parsed: list[ScoreComponent] = []
    for i, item in enumerate(items):
        where = f"components[{i}]"
        raw: Mapping[str, Any]
        if isinstance(item, ScoreComponent):
            raw = {"name": item.name, "value": item.value, "weight": item.weight, "explanation": item.explanation}
        elif isinstance(item, Mapping):
            unknown = sorted(set(item) - {"name", "value", "weight", "explanation"})
            if unknown:
                raise InvalidInput(where, f"unknown keys {unknown}")
            raw = item
        else:
            raise InvalidInput(where, "must be a ScoreComponent or a mapping with name, value, weight, explanation")
        parsed.append(ScoreComponent(
            name=require_text(f"{where}.name", raw.get("name"), max_length=NAME_MAX),
            value=_number(f"{where}.value", raw.get("value"), 0.0, 100.0),
            weight=_number(f"{where}.weight", raw.get("weight"), 0.0, 1.0),
            explanation=require_text(f"{where}.explanation", raw.get("explanation"), max_length=EXPLANATION_MAX),
        ))
    names = [c.name.casefold() for c in parsed]
    repeated = sorted({c.name for c in parsed if names.count(c.name.casefold()) > 1})
    if repeated:
        raise InvalidInput("components", f"component names repeat: {', '.join(repeated)}")
    total = math.fsum(c.weight for c in parsed)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise InvalidInput("components", f"weights must sum to 1, they sum to {total!r}")
    return tuple(parsed)


def weighted_score(components: Iterable[ScoreComponent]) -> float:
    """The score: sum of value x weight, 0..100 (clamped against rounding at the edges)."""
    score = math.fsum(c.value * c.weight for c in components)
    return min(100.0, max(0.0, score))


class ContributionEvaluation(Aggregate):
    """A provider's contribution score for one period (art. 25)."""

    @staticmethod
    def create_id(provider_id: UUID, period: str, **_: Any) -> UUID:
        return uuid5(NAMESPACE_URL, f"shuyun/contribution/{provider_id}/{period}")

    @classmethod
    def publish(
        cls, *, provider_id: UUID, period: str, components: object, by: Actor, at: datetime
    ) -> ContributionEvaluation:
        check_operator_admin(by, "publish")
        if not isinstance(provider_id, UUID):
            raise InvalidInput("provider_id", "is required")
        parsed = parse_components(components)
        return cls(
            provider_id=provider_id, period=validate_period(period), components=parsed,
            score=weighted_score(parsed), by=by, at=require_time("at", at),
        )

    @event("Published")
    def __init__(
        self, *, provider_id: UUID, period: str, components: tuple[ScoreComponent, ...], score: float,
        by: Actor, at: datetime,
    ) -> None:
        self.provider_id = provider_id
        self.period = period
        self.history: list[EvaluationVersion] = [
            EvaluationVersion(number=1, components=tuple(components), score=score, reason="published",
                              user_id=by.user_id, at=at)
        ]

    def revise(self, *, components: object, reason: str, by: Actor, at: datetime) -> None:
        """Publish a corrected version; the earlier ones remain readable."""
        check_operator_admin(by, "revise")
        parsed = parse_components(components)
        reason = require_text("reason", reason, max_length=REASON_MAX)
        at = require_time("at", at)
        if parsed == self.components:
            raise InvalidInput("components", "the revision changes nothing", evaluation=self.id)
        self._revised(components=parsed, score=weighted_score(parsed), reason=reason, by=by, at=at)

    @event("Revised")
    def _revised(
        self, *, components: tuple[ScoreComponent, ...], score: float, reason: str, by: Actor, at: datetime
    ) -> None:
        self.history.append(EvaluationVersion(
            number=len(self.history) + 1, components=tuple(components), score=score, reason=reason,
            user_id=by.user_id, at=at,
        ))

    @property
    def current(self) -> EvaluationVersion:
        return self.history[-1]

    @property
    def components(self) -> tuple[ScoreComponent, ...]:
        return self.current.components

    @property
    def score(self) -> float:
        return self.current.score

    @property
    def revision_count(self) -> int:
        return len(self.history) - 1


def check_operator_admin(actor: Actor, doing: str) -> None:
    if actor.role is not Role.OPERATOR_ADMIN:
        raise PermissionDenied(
            f"only an operator admin may {doing} contribution evaluations, not {actor.role.value}",
            user=actor.user_id,
        )
