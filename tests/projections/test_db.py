"""The portable read-model layer: row operations executed in batches mean the same as one by
one; tables and frames look the same on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from marketplace.config import Config
from projections.base import (
    BOOL,
    FLOAT,
    INT,
    TEXT,
    TIMESTAMP,
    Delete,
    Increment,
    Insert,
    Op,
    ProjectionError,
    Table,
    Update,
    Upsert,
)
from projections.db import COPY_THRESHOLD, Database, OpWriter, SQLiteDatabase, connect, memory, read_frame

SCORES = Table("rm_t_scores", {"k": INT, "a": INT, "b": TEXT}, key=("k",))
PAIRS = Table("rm_t_pairs", {"k1": TEXT, "k2": INT, "n": INT, "x": FLOAT}, key=("k1", "k2"))
LOG = Table("rm_t_log", {"seq": INT, "what": TEXT}, key=("seq",))
TABLES = {t.name: t for t in (SCORES, PAIRS, LOG)}

small = st.integers(0, 3)
score_key = st.fixed_dictionaries({"k": small})
pair_key = st.fixed_dictionaries({"k1": st.sampled_from(["p", "q"]), "k2": small})
op_strategy = st.one_of(
    st.builds(lambda key, a, b: Upsert(SCORES.name, {**key, "a": a, "b": b}), score_key, small, st.text(max_size=3)),
    st.builds(lambda key, a: Upsert(SCORES.name, {**key, "a": a}), score_key, small),
    st.builds(lambda key, b: Update(SCORES.name, key, {"b": b}), score_key, st.text(max_size=3)),
    # Consecutive operations on one row are folded into one: every pair of kinds must keep its meaning.
    st.builds(lambda key, a: Update(SCORES.name, key, {"a": a}), score_key, small),
    st.builds(lambda key, b: Upsert(SCORES.name, {**key, "b": b}), score_key, st.text(max_size=3)),
    st.builds(lambda key, n: Increment(PAIRS.name, key, {"n": n}), pair_key, small),
    st.builds(lambda key: Delete(SCORES.name, key), score_key),
    st.builds(lambda key, d: Increment(SCORES.name, key, {"a": d}), score_key, st.integers(-5, 5)),
    st.builds(lambda key, n, x: Increment(PAIRS.name, key, {"n": n, "x": x}), pair_key, small,
              st.sampled_from([0.5, 1.25, -2.0])),
    st.builds(lambda key: Delete(PAIRS.name, key), pair_key),
    st.builds(lambda key, n: Upsert(PAIRS.name, {**key, "n": n}), pair_key, small),
    st.builds(lambda what: Insert(LOG.name, (None, what)), st.text(max_size=3)),
    # Operations on appended rows, before or after their insert: order on one row must hold.
    st.builds(lambda seq, what: Update(LOG.name, {"seq": seq}, {"what": what}), st.integers(0, 8), st.text(max_size=3)),
    st.builds(lambda seq: Delete(LOG.name, {"seq": seq}), st.integers(0, 8)),
)


def numbered(ops: Sequence[Op]) -> list[Op]:
    """Give appended log rows increasing keys, as a real append-only table would have."""
    return [Insert(op.table, (i, op.row[1])) if isinstance(op, Insert) else op for i, op in enumerate(ops)]


def contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    return {name: db.query(f"SELECT * FROM {name} ORDER BY {', '.join(t.key)}")[1] for name, t in TABLES.items()}


def fresh_db() -> Database:
    db = memory()
    with db.transaction() as cur:
        db.reset_tables(cur, list(TABLES.values()), drop=True)
    return db


def assert_batched_is_one_by_one(ops: Sequence[Op]) -> Database:
    """Run ``ops`` in one batch and one by one on fresh databases; the tables must end the same. The batch's."""
    batched, one_by_one = fresh_db(), fresh_db()
    with batched.transaction() as cur:
        OpWriter(batched, TABLES).execute(cur, ops)
    writer = OpWriter(one_by_one, TABLES)
    for op in ops:
        with one_by_one.transaction() as cur:
            writer.execute(cur, [op])
    assert contents(batched) == contents(one_by_one)
    return batched


@settings(max_examples=500, deadline=None)
@given(st.lists(op_strategy, max_size=40))
def test_batched_operations_equal_the_same_operations_one_by_one(raw_ops: list[Op]) -> None:
    ops = numbered(raw_ops)
    assert_batched_is_one_by_one(ops)


#: Increments as a mapping gives them: some objects shared by many events (one more of a kind), some made
#: afresh with equal keys, integer and fractional deltas, on two tables.
counted = st.one_of(
    st.builds(lambda key, n: Increment(PAIRS.name, key, {"n": n}), pair_key, st.integers(-3, 3)),
    st.builds(lambda key, n, x: Increment(PAIRS.name, key, {"x": x, "n": n}), pair_key, small,
              st.sampled_from([0.5, 1.25, -2.0, 3])),
    st.builds(lambda key, a: Increment(SCORES.name, key, {"a": a}), score_key, st.integers(-5, 5)),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(counted, min_size=1, max_size=6), st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=60),
       st.booleans())
def test_appended_rows_and_counts_equal_the_same_operations_one_by_one(
    pool: list[Increment], picks: list[tuple[int, bool]], fresh_copies: bool,
) -> None:
    """A batch of inserts and increments (an audit trail's rows and counts) skips the per-row bookkeeping
    and counts operation objects seen many times at once: the tables end as they do one by one."""
    ops: list[Op] = []
    for i, (pick, appended) in enumerate(picks):
        if appended:
            ops.append(Insert(LOG.name, (i, f"row {i}")))
        else:
            op = pool[pick % len(pool)]
            ops.append(Increment(op.table, dict(op.key), dict(op.deltas)) if fresh_copies else op)
    assert_batched_is_one_by_one(ops)


def test_a_batch_of_rows_and_counts_is_one_statement_per_table_and_shape() -> None:
    counted_a = Increment(PAIRS.name, {"k1": "p", "k2": 1}, {"n": 1})
    ops: list[Op] = []
    for i in range(1000):
        ops += [Insert(LOG.name, (i, "x")), counted_a, Increment(PAIRS.name, {"k1": "q", "k2": i % 2}, {"n": 2})]
    plan = OpWriter(fresh_db(), TABLES).plan(ops)
    assert plan[LOG.name] == [(("insert", LOG.name), [(i, "x") for i in range(1000)])]
    assert plan[PAIRS.name] == [(("increment", PAIRS.name, ("k1", "k2"), ("n",)),
                                 [("p", 1, 1000), ("q", 0, 1000), ("q", 1, 1000)])]
    # Fractions are added up in order, as one by one: in floating point 0.1 + 1.1 + 0.1 is not 2 * 0.1 + 1.1.
    key = {"k1": "p", "k2": 1}
    tenth, more = Increment(PAIRS.name, key, {"x": 0.1}), Increment(PAIRS.name, key, {"x": 1.1})
    batched = assert_batched_is_one_by_one([tenth, more, tenth])
    assert batched.query("SELECT x FROM rm_t_pairs")[1] == [(0.1 + 1.1 + 0.1,)] != [(2 * 0.1 + 1.1,)]
    # A table given both inserts and increments keeps their order, through the general plan.
    db = fresh_db()
    with db.transaction() as cur:
        OpWriter(db, TABLES).execute(cur, [Insert(SCORES.name, (1, 5, "b")),
                                           Increment(SCORES.name, {"k": 1}, {"a": 2})])
    assert db.query("SELECT k, a, b FROM rm_t_scores")[1] == [(1, 7, "b")]


def test_increment_creates_the_row_then_adds() -> None:
    db = fresh_db()
    with db.transaction() as cur:
        OpWriter(db, TABLES).execute(cur, [
            Upsert(PAIRS.name, {"k1": "p", "k2": 1, "x": 1.0}),  # n left NULL: counts from zero
            Increment(PAIRS.name, {"k1": "p", "k2": 1}, {"n": 2, "x": 0.5}),
            Increment(PAIRS.name, {"k1": "q", "k2": 1}, {"n": 3}),
            Increment(PAIRS.name, {"k1": "q", "k2": 1}, {"n": 4}),
        ])
    assert db.query("SELECT k1, k2, n, x FROM rm_t_pairs ORDER BY k1")[1] == [("p", 1, 2, 1.5), ("q", 1, 7, None)]


@pytest.mark.parametrize(
    ("op", "problem"),
    [
        (Update(SCORES.name, {"a": 1}, {"b": "x"}), "must name exactly its key"),
        (Delete(PAIRS.name, {"k1": "p"}), "must name exactly its key"),
        (Increment(PAIRS.name, {"k1": "p"}, {"n": 1}), "must name exactly its key"),
        (Increment(SCORES.name, {"k": [1]}, {"a": 1}), "key values must be scalars"),
        (Increment(SCORES.name, {"k": 1}, {"b": 1}), "not numeric"),
        (Upsert(SCORES.name, {"a": 1}), "must include its key"),
        (Upsert(SCORES.name, {"k": 1, "zzz": 1}), "unknown columns"),
        (Insert("rm_t_missing", (1,)), "no projection here declares"),
        ("not an op", "not a row operation"),
    ],
)
@pytest.mark.parametrize("then_delete", [False, True])
def test_malformed_operations_are_refused_by_name(op: Any, problem: str, then_delete: bool) -> None:
    """Also when a delete of the same row follows: folding the two must not hide the problem."""
    db = fresh_db()
    ops = [op]
    if then_delete and isinstance(op, Upsert | Update) and "k" in (op.row if isinstance(op, Upsert) else op.key):
        ops.append(Delete(SCORES.name, {"k": 1}))
    with pytest.raises(ProjectionError, match=problem), db.transaction() as cur:
        OpWriter(db, TABLES).execute(cur, ops)
    assert contents(db) == contents(fresh_db())  # the transaction rolled back


def test_an_upsert_then_a_delete_of_its_row_is_one_delete() -> None:
    """The delete undoes the upsert whatever the row held: one statement, the delete."""
    plan = OpWriter(fresh_db(), TABLES).plan([
        Upsert(SCORES.name, {"k": 1, "a": 2}),
        Upsert(SCORES.name, {"k": 2, "a": 3}),
        Delete(SCORES.name, {"k": 1}),
    ])
    # (one wave: statements on different rows commute, in whatever order)
    assert sorted(plan[SCORES.name]) == [(("delete", SCORES.name, ("k",)), [(1,)]),
                                         (("upsert", SCORES.name, ("k", "a")), [(2, 3)])]


KINDS = Table(
    "rm_t_kinds",
    {"id": INT, "name": TEXT, "ratio": FLOAT, "flag": BOOL, "at": TIMESTAMP},
    key=("id",), indexes=(("name",), ("flag", "at")),
)


@pytest.mark.parametrize("rows", [3, COPY_THRESHOLD + 5])  # executemany, and COPY on PostgreSQL
def test_every_column_type_reads_back_with_the_same_dtype_on_both_stores(config: Config, rows: int) -> None:
    stamps = [datetime(2026, 3, 1, 8, 0, s % 60, (s * 7919) % 1_000_000, tzinfo=UTC) for s in range(rows)]
    ops: list[Op] = [
        Insert(KINDS.name, (i, f"row {i}" if i % 3 else None, i / 4, i % 2 == 0, stamps[i].isoformat()))
        for i in range(rows)
    ]
    with connect(config) as db:
        with db.transaction() as cur:
            db.reset_tables(cur, [KINDS], drop=True)
            OpWriter(db, {KINDS.name: KINDS}).execute(cur, ops)
        frame = read_frame(db, KINDS)
    expected = pl.DataFrame(
        {
            "id": list(range(rows)),
            "name": [f"row {i}" if i % 3 else None for i in range(rows)],
            "ratio": [i / 4 for i in range(rows)],
            "flag": [i % 2 == 0 for i in range(rows)],
            "at": stamps,
        },
        schema={"id": pl.Int64, "name": pl.String, "ratio": pl.Float64, "flag": pl.Boolean,
                "at": pl.Datetime("us", "UTC")},
    )
    assert_frame_equal(frame, expected)


def test_an_empty_table_still_has_its_declared_dtypes(config: Config) -> None:
    with connect(config) as db:
        with db.transaction() as cur:
            db.reset_tables(cur, [KINDS], drop=True)
        frame = read_frame(db, KINDS)
    assert frame.height == 0
    assert dict(frame.schema) == {"id": pl.Int64, "name": pl.String, "ratio": pl.Float64, "flag": pl.Boolean,
                                  "at": pl.Datetime("us", "UTC")}


def test_deferred_indexes_are_created_later_and_only_once(config: Config) -> None:
    with connect(config) as db:
        with db.transaction() as cur:
            db.reset_tables(cur, [KINDS], drop=True, indexes=False)
        with db.transaction() as cur:
            db.create_indexes(cur, [KINDS])
            db.create_indexes(cur, [KINDS])  # idempotent
        if db.dialect == "sqlite":
            _, rows = db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'rm_t_kinds'")
        else:
            _, rows = db.query("SELECT indexname FROM pg_indexes WHERE tablename = 'rm_t_kinds'")
    names = sorted(r[0] for r in rows if r[0].startswith("rm_t_kinds__"))  # not the primary key's own
    assert names == ["rm_t_kinds__flag_at", "rm_t_kinds__name"]


@pytest.mark.parametrize("seed", [1, 2])
def test_large_groups_of_every_kind_equal_the_same_operations_one_by_one_on_both_stores(
    config: Config, seed: int
) -> None:
    """Groups past ``COPY_THRESHOLD`` go through PostgreSQL's staging table in one statement each."""
    import random

    rng = random.Random(seed)
    keys = range(COPY_THRESHOLD * 8)
    makers = [
        lambda k: Upsert(SCORES.name, {"k": k, "a": rng.randrange(9), "b": rng.choice(["x", "y", None])}),
        lambda k: Update(SCORES.name, {"k": k}, {"b": rng.choice(["u", "v"])}),
        lambda k: Delete(SCORES.name, {"k": k}),
        lambda k: Increment(PAIRS.name, {"k1": rng.choice("pq"), "k2": k}, {"n": rng.randrange(-3, 4), "x": 0.5}),
        lambda k: Update(PAIRS.name, {"k1": rng.choice("pq"), "k2": k}, {"x": rng.choice([1.5, None])}),
    ]
    # Each round gives every key one operation of one kind: big groups, several waves.
    ops: list[Op] = [makers[(round_ + k) % len(makers)](k) for round_ in range(3) for k in keys]
    rng.shuffle(ops)
    big = {shape[0] for runs in OpWriter(memory(), TABLES).plan(ops).values() for shape, rows in runs
           if len(rows) >= COPY_THRESHOLD}
    assert big == {"upsert", "update", "delete", "increment"}  # every staged statement is exercised
    with connect(config) as batched:
        with batched.transaction() as cur:
            batched.reset_tables(cur, list(TABLES.values()), drop=True)
            OpWriter(batched, TABLES).execute(cur, ops)
        result = contents(batched)
    one_by_one = fresh_db()
    writer = OpWriter(one_by_one, TABLES)
    for op in ops:
        with one_by_one.transaction() as cur:
            writer.execute(cur, [op])
    expected = contents(one_by_one)
    assert result == expected and len(expected[SCORES.name]) > 0 and len(expected[PAIRS.name]) > 0


# -- SQLite's write lock ------------------------------------------------------------------------------


def test_a_writer_takes_sqlites_lock_as_soon_as_another_releases_it(tmp_path: Any) -> None:
    """SQLite's own busy handler sleeps up to 25 ms, then 50 and 100 ms, between tries; a runner waiting
    for another runner's commit must get the lock within a few milliseconds of it being freed."""
    import sqlite3
    import threading
    import time

    from projections.db import SQLiteDatabase

    db = SQLiteDatabase(str(tmp_path / "rm.sqlite"))
    with db.transaction() as cur:
        cur.execute("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(str(tmp_path / "rm.sqlite"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    got: list[float] = []

    def write() -> None:
        with db.transaction() as cur:
            got.append(time.monotonic())
            cur.execute("INSERT INTO t VALUES (1)")

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.45)  # long enough for SQLite's handler to be sleeping 100 ms at a time
    assert not got
    released = time.monotonic()
    other.execute("INSERT INTO t VALUES (0)")
    other.execute("COMMIT")
    writer.join(10)
    assert got and got[0] - released < 0.02
    assert other.execute("SELECT x FROM t ORDER BY rowid").fetchall() == [(0,), (1,)]
    other.close()
    db.close()


def test_a_waiting_writer_works_until_it_says_it_has_nothing_left_then_only_waits(tmp_path: Any) -> None:
    """``waiting`` runs while the lock is busy, the lock is tried between its pieces of work, and once it
    returns False it is not called again; the transaction then begins as soon as the lock is free."""
    import sqlite3
    import threading
    import time

    from projections.db import SQLiteDatabase

    db = SQLiteDatabase(str(tmp_path / "rm.sqlite"))
    with db.transaction() as cur:
        cur.execute("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(str(tmp_path / "rm.sqlite"), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    pieces: list[float] = []

    def waiting() -> bool:
        pieces.append(time.monotonic())
        return len(pieces) < 3  # three pieces of work, the third says it was the last

    def release() -> None:
        time.sleep(0.3)
        other.execute("COMMIT")

    holder = threading.Thread(target=release)
    holder.start()
    with db.transaction(waiting) as cur:
        began = time.monotonic()
        cur.execute("INSERT INTO t VALUES (1)")
    holder.join()
    assert len(pieces) == 3 and began - pieces[-1] >= 0.2  # then it waited without calling it again
    with db.transaction(waiting) as cur:  # the lock is free: no waiting at all
        cur.execute("INSERT INTO t VALUES (2)")
    assert len(pieces) == 3
    assert other.execute("SELECT x FROM t ORDER BY rowid").fetchall() == [(1,), (2,)]
    other.close()
    db.close()


def test_a_writer_gives_up_after_the_lock_timeout_with_sqlites_own_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    import projections.db as dbmod
    from projections.db import SQLiteDatabase

    monkeypatch.setattr(dbmod, "LOCK_TIMEOUT", 0.2)
    db = SQLiteDatabase(str(tmp_path / "rm.sqlite"))
    other = sqlite3.connect(str(tmp_path / "rm.sqlite"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"), db.transaction():
        pass
    other.execute("ROLLBACK")
    with db.transaction() as cur:  # and the connection still works, with its busy timeout back
        cur.execute("CREATE TABLE t (x INTEGER)")
    assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == int(0.2 * 1000)
    other.close()
    db.close()


def test_a_checkpoint_copies_into_the_file_what_another_connection_wrote_in_bulk(tmp_path: Any) -> None:
    """``bulk`` keeps a long rebuild's pages in the write-ahead log; ``checkpoint`` from any connection (a
    runner waiting for its helper) copies them into the database file, and the writer goes on meanwhile."""
    path = str(tmp_path / "rm.sqlite")
    writer, waiting = SQLiteDatabase(path), SQLiteDatabase(path)
    try:
        with writer.bulk():
            with writer.transaction() as cur:
                cur.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            for start in range(0, 20_000, 2_000):
                with writer.transaction() as cur:
                    cur.executemany("INSERT INTO t VALUES (?, ?)", [(k, "x" * 100) for k in range(start, start + 2000)])
            before = os.path.getsize(path)
            waiting.checkpoint()
            after = os.path.getsize(path)
            with writer.transaction() as cur:
                cur.execute("INSERT INTO t VALUES (?, ?)", (20_000, "y"))
        assert before < 100_000  # 20,000 rows of 100 bytes, all still in the log
        assert after > 2_000_000  # now in the file
        _, rows = waiting.query("SELECT COUNT(*) FROM t")
        assert rows == [(20_001,)]
    finally:
        writer.close()
        waiting.close()
