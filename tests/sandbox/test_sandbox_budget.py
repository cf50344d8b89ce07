"""The privacy budget over any sequence of queries (art. 22): never overspent, repeats identical.

A hypothesis state machine plays a subscription's ledger the way the API will: it keeps
the remaining epsilon, asks new or repeated queries in any order, and checks after every
step that the budget never goes below zero, that a query is refused exactly when it
costs more than is left, and that a repeated query returns the very same answer.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from marketplace.sandbox import BudgetExhausted, BuiltVersion, run_query
from tests.sandbox.products import context, people_policy

BUDGET = 2.5


class BudgetMachine(RuleBasedStateMachine):
    version: BuiltVersion

    @initialize()
    def start(self) -> None:
        self.remaining = BUDGET
        self.spent = 0.0
        self.answers: dict[str, pl.DataFrame] = {}
        self.asked: list[dict[str, Any]] = []
        self.refusals = 0

    def _ask(self, data: dict[str, Any], epsilon: float) -> None:
        policy = people_policy("general_4", epsilon_per_query=epsilon, epsilon_budget=BUDGET)
        before = self.remaining
        try:
            result = run_query(data, policy, pl.scan_parquet(self.version.path),
                               context(self.version, budget=self.remaining))
        except BudgetExhausted as exc:
            assert exc.needed > before + 1e-12
            self.refusals += 1
            return
        assert result.epsilon_spent == pytest.approx(epsilon)
        assert result.epsilon_spent <= before + 1e-12
        assert result.budget_remaining == pytest.approx(before - result.epsilon_spent, abs=1e-12)
        assert result.budget_remaining is not None
        self.remaining = result.budget_remaining
        self.spent += result.epsilon_spent
        key = f"{result.fingerprint}:{epsilon}"
        if key in self.answers:
            assert result.frame.equals(self.answers[key])
        self.answers[key] = result.frame
        self.asked.append(data)

    @rule(visits=st.integers(0, 19), dims=st.sampled_from([["district"], ["sex"], ["district", "sex"], []]),
          epsilon=st.sampled_from([0.25, 0.5, 1.0]))
    def new_query(self, visits: int, dims: list[str], epsilon: float) -> None:
        self._ask({"dimensions": dims, "aggregates": [{"fn": "count"}, {"fn": "mean", "column": "income"}],
                   "filters": [{"column": "visits", "op": "gte", "value": visits}]}, epsilon)

    @precondition(lambda self: bool(self.asked))
    @rule(i=st.integers(0, 100), epsilon=st.sampled_from([0.25, 0.5, 1.0]))
    def repeat_query(self, i: int, epsilon: float) -> None:
        self._ask(self.asked[i % len(self.asked)], epsilon)

    @invariant()
    def never_overspent(self) -> None:
        assert self.remaining >= 0
        assert self.spent <= BUDGET + 1e-9
        assert self.remaining == pytest.approx(BUDGET - self.spent, abs=1e-9)


@pytest.fixture
def budget_machine(people_version: BuiltVersion) -> type[BudgetMachine]:
    BudgetMachine.version = people_version
    return BudgetMachine


def test_art22_no_sequence_of_queries_overspends_the_privacy_budget(budget_machine: type[BudgetMachine]) -> None:
    runner = budget_machine.TestCase
    runner.settings = settings(max_examples=25, stateful_step_count=12, deadline=None,
                               suppress_health_check=[HealthCheck.too_slow])
    runner().runTest()
