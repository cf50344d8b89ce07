"""Storefront render time with a scaled catalog vs an empty one (AppTest, no browser).

Workload: ``int(1000 * scale)`` listed products (each through the real services: build,
consent, version, compliance review by another person, cap, plan, listing), then the
storefront page rendered by ``streamlit.testing.v1.AppTest`` for an anonymous visitor:
catalog query with facets, the table and the first product's page. The first render of
each store (opening the store, catching the read models up, loading every product once)
is left out: the figure is a warm re-render, best of 3, as a visitor meets it. Baseline:
the same render of an empty catalog. Target: ratio <= 5 at 1,000 products.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import Result, result
from marketplace.bootstrap import build
from marketplace.config import Config

HOME = str(Path(__file__).resolve().parent.parent / "streamlit_app" / "Home.py")


def _seed(config: Config, n: int) -> None:
    # The seed reuses the test scenario helpers; ``shuyun bench`` runs from an installed entry
    # point, which does not put the repository root (where ``tests/`` lives) on the path.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.scenario import approved_resource, basic_plan, digest, staff

    mp = build(config)
    try:
        people = staff(mp)
        if n == 0:
            return
        resource_id = approved_resource(mp, people, name="Bench water meter readings")
        from tests.scenario import provider_clerk

        clerk = provider_clerk(mp, resource_id)
        fields = [{"name": "district", "dtype": "category", "description": "City district"},
                  {"name": "month", "dtype": "date", "description": "Month"},
                  {"name": "consumption_m3", "dtype": "float", "description": "Water consumed"}]
        for i in range(n):
            name = f"Bench product {i:05d} water use"
            pid = mp.products.build_product(
                people.product_manager, name=name, description="benchmark product", category=f"cat-{i % 12}",
                source_ids=[resource_id], fields=fields, delivery_modes=["sandbox_aggregate"])
            mp.catalog.decide_supply(clerk, resource_id, product_id=pid, granted=True, reason="bench")
            mp.products.register_product_version(people.product_manager, pid, content_hash=digest(name), row_count=100)
            mp.products.submit_for_review(people.product_manager, pid)
            mp.products.review_compliance(people.reviewer, pid, approved=True, reason="aggregates only")
            mp.products.set_price_cap(people.admin, pid, cap="100.00", reason="bench cap")
            mp.products.set_price_plan(people.product_manager, pid, plan=basic_plan(price=f"{1 + i % 50}.00"),
                                       reason="bench plan")
            mp.products.list_product(people.product_manager, pid)
    finally:
        mp.close()


def _render_time(config: Config) -> float:
    from streamlit.testing.v1 import AppTest

    os.environ["SHUYUN_DATA_DIR"] = str(config.data_dir)
    os.environ.pop("SHUYUN_DATABASE_URL", None)
    at = AppTest.from_file(HOME, default_timeout=600)
    at.run()  # cold: open store, catch up, load every product once
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        at.run()
        best = min(best, time.perf_counter() - start)
    return best


def run(scale: float = 1.0) -> list[Result]:
    n = max(10, int(1000 * scale))
    tmp = Path(tempfile.mkdtemp(prefix="shuyun-bench-storefront-"))
    empty, full = Config(data_dir=tmp / "empty"), Config(data_dir=tmp / "full")
    _seed(empty, 0)
    _seed(full, n)
    saved = os.environ.get("SHUYUN_DATA_DIR")
    try:
        baseline = _render_time(empty)
        value = _render_time(full)
    finally:
        if saved is None:
            os.environ.pop("SHUYUN_DATA_DIR", None)
        else:
            os.environ["SHUYUN_DATA_DIR"] = saved
    return [result(f"storefront_render_{n}_products", value * 1000, "ms/render", baseline * 1000, "<= 5")]


if __name__ == "__main__":
    for row in run(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0):
        print(row)
