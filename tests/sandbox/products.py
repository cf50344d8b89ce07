"""Synthetic products for the sandbox tests: a person-level one with a planted target, an open one.

Data and helpers live here; the session fixtures that build them are in ``conftest``.

``people``: 4,000 residents built by a real recipe (age generalised to bands, person ids
hashed). The target of every restoration attack is one person — the only resident of
石拐区 aged 90 or over, with a known income — and 白云鄂博矿区 has just three residents, for
the tiny-filter attacks. ``buses``: open, non-personal boarding counts (general_1 with a
row-level file), for the paths where rows and exact results are allowed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from marketplace.sandbox import BuiltVersion, Policy, QueryContext, policy_for

SECRET = b"sandbox-test-secret"
HASH_KEY = b"sandbox-test-hash-key"
TARGET_DISTRICT = "石拐区"
TARGET_INCOME = 150_000.0
TINY_DISTRICT = "白云鄂博矿区"
BIG_DISTRICTS = ["昆都仑区", "青山区", "东河区", "九原区"]
INCOME_BOUNDS = (0.0, 200_000.0)

PEOPLE_FIELDS = [
    ("district", "category", False),
    ("sex", "string", False),
    ("age", "integer", True),
    ("age_band", "string", False),
    ("income", "float", True),
    ("person_id", "string", True),
    ("visit_date", "date", False),
    ("fee", "float", False),
    ("visits", "integer", False),
]

PEOPLE_RECIPE: dict[str, Any] = {
    "source": "residents",
    "steps": [
        {"op": "generalise", "column": "age", "method": "age_band", "width": 10, "top": 90, "as": "age_band"},
        {"op": "generalise", "column": "income", "method": "top_code", "upper": INCOME_BOUNDS[1]},
        {"op": "hash", "columns": ["person_id"]},
    ],
}


def people_source(n_big: int = 4000) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    rows: dict[str, list[Any]] = {k: [] for k in ("district", "sex", "age", "income", "person_id", "visit_date",
                                                    "fee", "visits")}

    def add(district: str, age: int, income: float) -> None:
        i = len(rows["district"])
        rows["district"].append(district)
        rows["sex"].append("F" if rng.random() < 0.5 else "M")
        rows["age"].append(age)
        rows["income"].append(round(income, 2))
        rows["person_id"].append(f"P{i:06d}")
        rows["visit_date"].append(date(2024, 1, 1) + timedelta(days=int(rng.integers(0, 366))))
        rows["fee"].append(round(float(rng.uniform(5, 500)), 2))
        rows["visits"].append(int(rng.integers(0, 20)))

    for _ in range(n_big):
        add(str(rng.choice(BIG_DISTRICTS)), int(rng.integers(0, 100)), float(rng.lognormal(10.8, 0.5)))
    for _ in range(39):  # the target district: nobody else aged 90 or over
        add(TARGET_DISTRICT, int(rng.integers(18, 90)), float(rng.lognormal(10.8, 0.5)))
    add(TARGET_DISTRICT, 93, TARGET_INCOME)  # the target
    for _ in range(3):
        add(TINY_DISTRICT, int(rng.integers(20, 60)), float(rng.lognormal(10.8, 0.5)))
    return pl.DataFrame(rows).with_columns(pl.col("district").cast(pl.Categorical))


def buses_source() -> pl.DataFrame:
    rng = np.random.default_rng(11)
    n = 2000
    start = datetime(2024, 5, 1, 6, 0)
    return pl.DataFrame({
        "line": pl.Series([f"L{int(x)}" for x in rng.integers(1, 6, n)]).cast(pl.Categorical),
        "stop": [f"S{int(x):02d}" for x in rng.integers(1, 30, n)],
        "boarded_at": [start + timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 7, n)],
        "riders": rng.integers(0, 60, n),
        "fare": np.round(rng.uniform(0.5, 4.0, n), 2),
        "weekend": rng.random(n) < 0.3,
    })


BUS_FIELDS = [
    ("line", "category", False),
    ("stop", "string", False),
    ("boarded_at", "datetime", False),
    ("riders", "integer", False),
    ("fare", "float", False),
    ("weekend", "boolean", False),
]


def people_policy(grade: str = "general_3", **kwargs: Any) -> Policy:
    return policy_for(
        grade, kwargs.pop("modes", ["sandbox_aggregate"]), PEOPLE_FIELDS, identifiers=["person_id"],
        bounds={"income": INCOME_BOUNDS}, **kwargs,
    )


def bus_policy(**kwargs: Any) -> Policy:
    return policy_for("general_1", kwargs.pop("modes", ["sandbox_aggregate", "row_level_file"]), BUS_FIELDS, **kwargs)


def context(version: BuiltVersion, subscription: str = "sub-0001", *, budget: float | None = None,
            secret: bytes = SECRET) -> QueryContext:
    return QueryContext(subscription, version.content_hash, secret, budget_remaining=budget,
                        row_count=version.row_count)
