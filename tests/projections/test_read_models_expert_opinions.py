"""The expert committee's opinions on products (art. 6) in the catalog read model, on SQLite and PostgreSQL.

The storefront's product page and the compliance reviewer read them through
``views.product_expert_opinions``: each opinion as the product aggregate holds it, in the
order recorded, with the product's name and current status. Rebuilding the catalog read
model from zero in small or uneven batches gives exactly the tables the incremental
catch-up built.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from polars.testing import assert_frame_equal
from projection_helpers import Clock

from domain.products import DataProduct
from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config
from projections import catalog as catalog_rm
from projections import views
from projections.db import memory, read_frame
from projections.log import EventLog
from projections.registry import all_projections
from projections.runner import Runner
from tests.scenario import Staff, approved_product, built_product, listed_product, staff

T0 = datetime(2025, 4, 7, 2, 0, tzinfo=UTC)
MINE = ("catalog",)


@pytest.fixture
def world(config: Config) -> Iterator[tuple[Marketplace, Runner, Clock, Staff]]:
    clock = Clock(T0)
    mp = build(config, clock=clock)
    runner = Runner.open(config, app=mp.app, batch_size=7)
    try:
        yield mp, runner, clock, staff(mp)
    finally:
        runner.close()
        mp.close()


def expected(mp: Marketplace, product_id: Any) -> list[tuple[str, str, str, str]]:
    """The product aggregate's own opinions, as plain values, in the order recorded."""
    product = mp.products.get(DataProduct, product_id)
    return [(o.expert, o.opinion, o.recommendation.value, o.recorded_by) for o in product.expert_opinions]


def shown(frame: Any) -> list[tuple[str, str, str, str]]:
    return [(r["expert"], r["opinion"], r["recommendation"], r["recorded_by"]) for r in frame.iter_rows(named=True)]


def test_art6_product_opinions_are_listed_as_recorded_with_the_product_they_advise_on(
    world: tuple[Marketplace, Runner, Clock, Staff],
) -> None:
    mp, runner, clock, people = world
    listed = listed_product(mp, people)
    in_review = built_product(mp, people, name="Hourly gas use")
    runner.catch_up()
    assert views.product_expert_opinions(runner).is_empty()

    clock.advance(hours=1)
    mp.products.add_expert_opinion(people.supervisor, listed, expert="Prof. Zhao, expert committee",
                                   opinion="district aggregates are safe", recommendation="approve")
    clock.advance(hours=1)
    mp.products.add_expert_opinion(people.reviewer, in_review, expert="Dr. Qian",
                                   opinion="hourly counts need a minimum group of 10",
                                   recommendation="approve_with_conditions")
    runner.catch_up()  # part incremental, the rest below
    clock.advance(hours=1)
    mp.products.add_expert_opinion(people.supervisor, listed, expert="Expert committee",
                                   opinion="noise is not needed at this grade", recommendation="reject")
    runner.catch_up()

    everything = views.product_expert_opinions(runner)
    assert everything["product_id"].to_list() == [str(listed), str(in_review), str(listed)]
    assert everything["opinion_id"].to_list() == sorted(everything["opinion_id"].to_list())
    # Event times are the store's (when recorded), in the order the service acted.
    assert everything["recorded_at"].to_list() == sorted(everything["recorded_at"].to_list())
    assert everything["recorded_at"].null_count() == 0
    assert everything.select("product_name", "product_status").rows() == [
        ("District water use", "listed"), ("Hourly gas use", "draft"), ("District water use", "listed")]
    for product_id in (listed, in_review):
        mine = views.product_expert_opinions(runner, product_id)
        assert shown(mine) == expected(mp, product_id)
        detail = views.product_detail(runner, product_id).row(0, named=True)
        assert detail["expert_opinion_count"] == mine.height
    assert shown(views.product_expert_opinions(runner, listed)) == [
        ("Prof. Zhao, expert committee", "district aggregates are safe", "approve", "bureau"),
        ("Expert committee", "noise is not needed at this grade", "reject", "bureau")]
    assert views.product_expert_opinions(runner, approved_product(mp, people, name="Bed occupancy")).is_empty()


def test_art6_rebuilding_the_catalog_from_zero_in_small_batches_keeps_every_opinion(
    config: Config, world: tuple[Marketplace, Runner, Clock, Staff],
) -> None:
    mp, runner, clock, people = world
    products = [listed_product(mp, people), built_product(mp, people, name="Hourly gas use")]
    for i in range(5):
        clock.advance(minutes=7)
        mp.products.add_expert_opinion(people.supervisor if i % 2 else people.reviewer, products[i % 2],
                                       expert=f"Expert {i}", opinion=f"opinion {i}",
                                       recommendation=["approve", "approve_with_conditions", "reject"][i % 3])
        if i == 2:
            runner.catch_up()
    runner.catch_up()
    tables = [t for p in all_projections() if p.name in MINE for t in p.tables]
    assert catalog_rm.EXPERT_OPINIONS in tables
    before = {t.name: read_frame(runner.db, t) for t in tables}
    assert before[catalog_rm.EXPERT_OPINIONS.name].height == 5
    with Runner.open(config, app=mp.app, batch_size=3) as small:
        small.rebuild(list(MINE))
        assert small.lag(list(MINE)) == dict.fromkeys(MINE, 0)
        for table in tables:
            assert_frame_equal(read_frame(small.db, table), before[table.name], check_row_order=True)
    log = EventLog.open(mp.app, config)
    chunked = Runner(log, memory(), [p for p in all_projections() if p.name in MINE], batch_size=5, closing=[log])
    with chunked:
        for limit in (1, 4, 2, 9, 1):
            chunked.catch_up(limit=limit)
        chunked.catch_up()
        for table in tables:
            assert_frame_equal(read_frame(chunked.db, table), before[table.name], check_row_order=True)
        chunked.db.close()
