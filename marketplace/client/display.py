"""What the SDK returns besides frames: entitlements, product descriptions, usage and budgets.

Each is a thin, read-only wrapper over the API's JSON with a ``_repr_html_`` so that a
notebook cell shows a readable table (what the unit may use, what is left, when it
resets) and a ``to_polars()`` for analysing it like any other data.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "") -> str:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    cap = f"<caption style='text-align:left'><b>{html.escape(caption)}</b></caption>" if caption else ""
    return f"<table class='shuyun'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _left(remaining: dict[str, Any], ent: dict[str, Any], key: str, ent_key: str) -> str:
    return f"{_cell(remaining.get(key))} of {_cell(ent.get(ent_key))}"


@dataclass(frozen=True)
class Entitlement:
    """One subscription of the unit: the product, its status and term, what is left this month."""

    subscription_id: str
    product_id: str
    product_name: str
    status: str
    term_end: date
    fields: tuple[str, ...]
    queries_left: int
    rows_left: int
    budget_left: float
    resets_on: date
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Entitlement:
        remaining = item.get("remaining", {})
        return cls(
            subscription_id=item["id"], product_id=item["product"]["id"],
            product_name=item["product"].get("name") or "", status=item["status"],
            term_end=date.fromisoformat(item["term"]["end"]), fields=tuple(item.get("fields", ())),
            queries_left=int(remaining.get("queries", 0)), rows_left=int(remaining.get("rows", 0)),
            budget_left=float(remaining.get("budget", 0.0)),
            resets_on=date.fromisoformat(remaining["reset_on"]), raw=item,
        )


class Entitlements(Sequence[Entitlement]):
    """The unit's subscriptions the workspace credentials cover (``client.entitlements()``)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.unit_id: str = data.get("unit_id", "")
        self.user_id: str = data.get("user_id", "")
        self.items = [Entitlement.from_json(i) for i in data.get("subscriptions", [])]

    def __getitem__(self, index: int) -> Entitlement:  # type: ignore[override]
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Entitlement]:
        return iter(self.items)

    def to_polars(self) -> pl.DataFrame:
        return pl.DataFrame(
            [{
                "product": e.product_name, "product_id": e.product_id, "subscription_id": e.subscription_id,
                "status": e.status, "term_end": e.term_end, "queries_left": e.queries_left,
                "rows_left": e.rows_left, "budget_left": e.budget_left, "resets_on": e.resets_on,
            } for e in self.items],
            schema={"product": pl.String, "product_id": pl.String, "subscription_id": pl.String,
                    "status": pl.String, "term_end": pl.Date, "queries_left": pl.Int64, "rows_left": pl.Int64,
                    "budget_left": pl.Float64, "resets_on": pl.Date},
        )

    def _repr_html_(self) -> str:
        rows = []
        for e in self.items:
            ent = e.raw.get("entitlements", {})
            rows.append([
                e.product_name, e.status, e.term_end.isoformat(),
                _left(e.raw.get("remaining", {}), ent, "queries", "queries_per_period"),
                _left(e.raw.get("remaining", {}), ent, "rows", "rows_per_period"),
                _left(e.raw.get("remaining", {}), ent, "budget", "privacy_budget"),
                e.resets_on.isoformat(),
            ])
        return _table(
            ["product", "status", "term ends", "queries left", "rows left", "privacy budget left", "resets on"],
            rows, caption=f"Entitlements of {self.user_id} (unit {self.unit_id})",
        )

    def __repr__(self) -> str:
        return "\n".join(
            f"{e.product_name} [{e.status}] queries left {e.queries_left}, budget left {e.budget_left:g}"
            for e in self.items
        ) or "no entitlements"


@dataclass(frozen=True)
class ProductInfo:
    """A product's data dictionary, its policy in plain words and what the subscription has left."""

    raw: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.raw["id"])

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def policy(self) -> dict[str, Any]:
        policy: dict[str, Any] = self.raw.get("policy", {})
        return policy

    @property
    def min_group_size(self) -> int:
        return int(self.policy.get("min_group_size", 1))

    @property
    def dimensions(self) -> list[str]:
        return list(self.policy.get("dimensions", []))

    @property
    def remaining(self) -> dict[str, Any]:
        remaining: dict[str, Any] = self.raw.get("remaining", {})
        return remaining

    def fields(self) -> pl.DataFrame:
        """The data dictionary: name, type, description, personal, in the subscription's scope."""
        return pl.DataFrame(
            [{k: f.get(k) for k in ("name", "type", "description", "personal", "in_subscription_scope")}
             for f in self.raw.get("fields", [])],
            schema={"name": pl.String, "type": pl.String, "description": pl.String, "personal": pl.Boolean,
                    "in_subscription_scope": pl.Boolean},
        )

    def _repr_html_(self) -> str:
        policy = self.policy
        summary = "".join(f"<li>{html.escape(s)}</li>" for s in policy.get("summary", []))
        aggs = policy.get("aggregates", {})
        fields = _table(
            ["field", "type", "description", "group by", "aggregates", "in your scope"],
            [[f["name"], f["type"], f.get("description", ""),
              "yes" if f["name"] in policy.get("dimensions", []) else "",
              aggs.get(f["name"], []), "yes" if f.get("in_subscription_scope") else "no"]
             for f in self.raw.get("fields", [])],
        )
        remaining = self.remaining
        left = (f"<p>This month: {_cell(remaining.get('queries'))} queries, {_cell(remaining.get('rows'))} rows "
                f"and privacy budget {_cell(remaining.get('budget'))} left; resets on "
                f"{html.escape(str(remaining.get('reset_on')))}.</p>")
        return (f"<h4>{html.escape(self.name)}</h4><p>{html.escape(self.raw.get('description') or '')}</p>"
                f"<ul>{summary}</ul>{left}{fields}")

    def __repr__(self) -> str:
        return f"ProductInfo({self.name!r}, grade {self.raw.get('grade')}, k={self.min_group_size})"


class Usage:
    """This month's use and what is left per subscription (``client.usage()``): quotas and budgets."""

    def __init__(self, data: dict[str, Any], names: dict[str, str]) -> None:
        self.raw = data
        self.items: list[dict[str, Any]] = list(data.get("usage", []))
        self.names = names

    def to_polars(self) -> pl.DataFrame:
        return pl.DataFrame(
            [{
                "product": self.names.get(i["subscription_id"], ""), "subscription_id": i["subscription_id"],
                "period": i["period"], "queries_used": i["queries_used"], "rows_used": i["rows_used"],
                "budget_used": float(i["budget_used"]), "refusals": i["refusals"],
                "queries_left": i["remaining"]["queries"], "budget_left": float(i["remaining"]["budget"]),
            } for i in self.items],
            schema={"product": pl.String, "subscription_id": pl.String, "period": pl.String,
                    "queries_used": pl.Int64, "rows_used": pl.Int64, "budget_used": pl.Float64,
                    "refusals": pl.Int64, "queries_left": pl.Int64, "budget_left": pl.Float64},
        )

    def _repr_html_(self) -> str:
        rows = []
        for i in self.items:
            used, left = float(i["budget_used"]), float(i["remaining"]["budget"])
            total = used + left
            bar = ""
            if total > 0:
                width = round(100 * used / total)
                bar = (f"<div style='width:120px;background:#eee'><div style='width:{width}%;background:#c0392b;"
                       f"height:8px'></div></div>")
            rows.append((self.names.get(i["subscription_id"], i["subscription_id"]), i["period"], i["queries_used"],
                         i["remaining"]["queries"], i["rows_used"], f"{used:g} used / {left:g} left", bar,
                         i["refusals"], i["remaining"]["reset_on"]))
        head = ["product", "period", "queries used", "queries left", "rows used", "privacy budget", "", "refusals",
                "resets on"]
        cells = "".join(
            "<tr>" + "".join(
                f"<td>{v}</td>" if k == 6 else f"<td>{html.escape(_cell(v))}</td>" for k, v in enumerate(r)
            ) + "</tr>" for r in rows
        )
        return ("<table class='shuyun'><caption style='text-align:left'><b>Usage and budgets</b></caption><thead><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr></thead><tbody>{cells}</tbody></table>")

    def __repr__(self) -> str:
        return "\n".join(
            f"{self.names.get(i['subscription_id'], i['subscription_id'])}: {i['queries_used']} queries used, "
            f"budget left {i['remaining']['budget']}" for i in self.items
        ) or "no usage"
