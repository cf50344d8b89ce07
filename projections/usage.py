"""Usage: what every subscription consumed, per metering period and per day (art. 8, 23, 26).

Usage is the high-volume stream, so this mapping is kept to two counter increments per
use. A ``UseRecorded`` event names only its ledger (one ``UsageLedger`` per subscription
and month), not the subscription, unit or product; the ledger's ``Opened`` event does.
So the per-day rows are keyed by ledger and joined to ``rm_usage_ledgers`` at read time
(``views.usage_daily``) rather than looked up here: a pure mapping cannot read.

Days and periods are business time: the ``at`` of the use on the Baotou calendar
(``domain.licensing.BUSINESS_TZ``), never the store's timestamp, so a use metered near
midnight lands on the day the quota counted it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from domain.licensing import BUSINESS_TZ
from projections.base import (
    FLOAT,
    INT,
    TEXT,
    TIMESTAMP,
    HandlerProjection,
    Increment,
    Op,
    Recorded,
    Table,
    Update,
    Upsert,
    canonical_uuid,
)

LEDGERS = Table(
    "rm_usage_ledgers",
    {
        "ledger_id": TEXT,
        "subscription_id": TEXT,
        "unit_id": TEXT,
        "product_id": TEXT,
        "period": TEXT,
        "opened_id": INT,
        "opened_at": TIMESTAMP,
        "queries_per_period": INT,
        "rows_per_period": INT,
        "privacy_budget": FLOAT,
        "queries_used": INT,
        "rows_used": INT,
        "budget_used": FLOAT,
        "refusals": INT,
    },
    key=("ledger_id",),
    indexes=(("subscription_id",), ("product_id",), ("unit_id",)),
)

DAILY = Table(
    "rm_usage_daily",
    {
        "ledger_id": TEXT,
        "day": TEXT,
        "queries": INT,
        "workspace_events": INT,
        "rows_out": INT,
        "budget_spent": FLOAT,
        "refusals": INT,
    },
    key=("ledger_id", "day"),
)

REFUSALS = Table(
    "rm_usage_refusals",
    {"ledger_id": TEXT, "day": TEXT, "reason": TEXT, "refusals": INT},
    key=("ledger_id", "day", "reason"),
)


# Hot paths read ``Recorded.raw`` (one C-level JSON parse, no object hook) and look through
# the transcoder's {"_type_", "_data_"} wrappers only for the attributes they use: the
# difference is most of the cost of a rebuild of a high-volume stream.


def plain(value: Any) -> Any:
    """An attribute of ``Recorded.raw`` without its one wrapper (an enum, a date, a datetime, a value object)."""
    return value["_data_"] if type(value) is dict and "_data_" in value else value


def raw_uuid(value: Any) -> str | None:
    """A UUID attribute of ``Recorded.raw`` in dashed form."""
    return None if value is None else canonical_uuid(plain(value))


def raw_user(raw: dict[str, Any]) -> str | None:
    """The acting user's id from ``Recorded.raw`` (the ``by`` actor every command records)."""
    by = plain(raw.get("by"))
    return by.get("user_id") if type(by) is dict else None


@lru_cache(maxsize=65_536)
def business_day(at: str) -> str:
    """``YYYY-MM-DD`` of an ISO instant on the Baotou calendar (a naive instant is UTC)."""
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BUSINESS_TZ).date().isoformat()


def _opened(e: Recorded) -> Sequence[Op]:
    d = e.raw
    ent = plain(d["entitlements"])
    return (Upsert(LEDGERS.name, {
        "ledger_id": e.originator_id, "subscription_id": raw_uuid(d["subscription_id"]),
        "unit_id": raw_uuid(d["unit_id"]), "product_id": raw_uuid(d["product_id"]), "period": d["period"],
        "opened_id": e.notification_id, "opened_at": plain(d["timestamp"]),
        "queries_per_period": ent["queries_per_period"], "rows_per_period": ent["rows_per_period"],
        "privacy_budget": float(ent["privacy_budget"]),
    }),)


def _use(e: Recorded) -> Sequence[Op]:
    d = e.raw
    ledger = e.originator_id
    rows, budget = d["rows_out"], float(d["budget_spent"])
    # As on the ledger (UsageKind.is_call): workspace time is recorded, not counted as a query.
    calls = 0 if plain(d["kind"]) == "workspace_session" else 1
    return (
        Increment(LEDGERS.name, {"ledger_id": ledger},
                  {"queries_used": calls, "rows_used": rows, "budget_used": budget, "refusals": 0}),
        Increment(DAILY.name, {"ledger_id": ledger, "day": business_day(plain(d["at"]))},
                  {"queries": calls, "workspace_events": 1 - calls, "rows_out": rows, "budget_spent": budget,
                   "refusals": 0}),
    )


def _refused(e: Recorded) -> Sequence[Op]:
    d = e.raw
    ledger, day = e.originator_id, business_day(plain(d["at"]))
    return (
        # The same shapes as a counted use, so a batch of mixed uses stays one statement per table.
        Increment(LEDGERS.name, {"ledger_id": ledger},
                  {"queries_used": 0, "rows_used": 0, "budget_used": 0.0, "refusals": 1}),
        Increment(DAILY.name, {"ledger_id": ledger, "day": day},
                  {"queries": 0, "workspace_events": 0, "rows_out": 0, "budget_spent": 0.0, "refusals": 1}),
        Increment(REFUSALS.name, {"ledger_id": ledger, "day": day, "reason": d["reason"]}, {"refusals": 1}),
    )


def _adopted(e: Recorded) -> Sequence[Op]:
    ent = e.data["entitlements"]
    return (Update(LEDGERS.name, {"ledger_id": e.originator_id}, {
        "queries_per_period": ent["queries_per_period"], "rows_per_period": ent["rows_per_period"],
        "privacy_budget": float(ent["privacy_budget"]),
    }),)


_L = "domain.usage:UsageLedger."
HANDLERS: dict[str, Callable[[Recorded], Iterable[Op]]] = {
    _L + "Opened": _opened,
    _L + "UseRecorded": _use,
    _L + "UseRefused": _refused,
    _L + "EntitlementsAdopted": _adopted,
}


class UsageProjection(HandlerProjection):
    """Per ledger (subscription x month) totals, per ledger and day counters, refusals by reason."""

    name = "usage"
    version = 3
    handlers = HANDLERS
    tables = (LEDGERS, DAILY, REFUSALS)
