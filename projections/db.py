"""A thin portable layer over the read-model database: SQLite or PostgreSQL, same code above it.

Read models live next to the event store (the same SQLite file, the same PostgreSQL
database) so a batch of view rows and the tracking position commit in one transaction.
This module owns the dialect differences: DDL rendering, placeholders, how a writer
takes the lock that makes a second runner lose cleanly (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL ``SELECT ... FOR UPDATE`` on the tracking rows), and bulk loading (COPY on
PostgreSQL). It also turns query results into Polars frames with the dtypes the
``Table`` declarations promise, so a frame looks the same whichever store it came from.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import compress
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from projections.base import (
    ColumnType,
    Delete,
    Increment,
    Insert,
    Op,
    ProjectionError,
    Table,
    Update,
    Upsert,
)

if TYPE_CHECKING:
    import polars as pl

    from marketplace.config import Config

#: Seconds a writer waits for another writer's lock before giving up (SQLite busy timeout).
LOCK_TIMEOUT = 30.0
#: How often a runner waiting for SQLite's write lock tries again (``SQLiteDatabase._begin``).
LOCK_POLL = 0.0005
#: The table that records, per projection, its version and the last notification id applied.
TRACKING_TABLE = "projection_tracking"
#: Runs of inserts at least this long go through COPY on PostgreSQL.
COPY_THRESHOLD = 200
#: The page cache of a read-model connection to SQLite, in KiB.
CACHE_KIB = 65_536

_SQLITE_TYPES = {
    ColumnType.TEXT: "TEXT",
    ColumnType.INT: "INTEGER",
    ColumnType.FLOAT: "REAL",
    ColumnType.BOOL: "INTEGER",
    ColumnType.TIMESTAMP: "TEXT",
}
_POSTGRES_TYPES = {
    ColumnType.TEXT: "text",
    ColumnType.INT: "bigint",
    ColumnType.FLOAT: "double precision",
    ColumnType.BOOL: "boolean",
    ColumnType.TIMESTAMP: "timestamptz",
}


def _polars_type(kind: ColumnType) -> Any:
    """The Polars dtype of a portable column type.

    Polars is imported where frames are made, not with this module: a runner process
    (a rebuild's helper among them) writes rows and never makes a frame, and importing
    Polars was a third of its start (about 0.3 s).
    """
    import polars as pl

    return {
        ColumnType.TEXT: pl.String,
        ColumnType.INT: pl.Int64,
        ColumnType.FLOAT: pl.Float64,
        ColumnType.BOOL: pl.Boolean,
        ColumnType.TIMESTAMP: pl.Datetime("us", "UTC"),
    }[kind]


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class Database:
    """One connection to the read-model database, in autocommit mode outside ``transaction()``.

    A connection holds one transaction at a time, so threads sharing a ``Database`` (a
    runner following the log in one, a page asking for its lag in another) take turns:
    ``lock`` is held for a whole transaction and for every statement outside one.
    """

    dialect: str = ""
    placeholder: str = "?"

    def __init__(self) -> None:
        self.lock = threading.RLock()

    # -- plumbing each dialect provides --------------------------------------------
    def cursor(self) -> Any:
        raise NotImplementedError

    @contextmanager
    def transaction(self, waiting: Callable[[], bool] | None = None) -> Iterator[Any]:
        """A write transaction; on SQLite it holds the database's single write lock from the start.

        While another writer holds the lock, ``waiting`` is called (before the transaction
        begins) so that the wait can do work that needs no lock, again after each piece of
        work, until it returns False (nothing more to do meanwhile).
        """
        raise NotImplementedError
        yield  # pragma: no cover

    def lock_schema(self, cur: Any) -> None:
        """Serialise DDL of concurrent runners (inside ``transaction()``)."""

    def table_exists(self, name: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def reconnect_if_broken(self) -> None:
        """Open a fresh connection if the server dropped this one (nothing to do for SQLite)."""

    @contextmanager
    def bulk(self, on: bool = True) -> Iterator[None]:
        """A long run of write transactions (a rebuild): the database may defer housekeeping until its end."""
        yield

    def checkpoint(self) -> None:
        """Do the housekeeping ``bulk`` defers, as far as it can without waiting (another runner's, too)."""

    #: Whether large groups of updates, upserts, deletes and increments go through a staging table.
    stages = False

    def copy_rows(self, cur: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cur.executemany(self.insert_sql(table, columns), rows)

    def stage_rows(self, cur: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Put ``rows`` alone in ``table``'s staging table (see ``OpWriter.staged``)."""
        raise NotImplementedError

    # -- SQL rendering --------------------------------------------------------------
    def sql(self, text: str) -> str:
        """Our SQL is written with ``?``; PostgreSQL's driver wants ``%s``."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def column_type(self, kind: ColumnType) -> str:
        return (_SQLITE_TYPES if self.dialect == "sqlite" else _POSTGRES_TYPES)[kind]

    def ddl(self, table: Table) -> list[str]:
        columns = ", ".join(
            f"{name} {self.column_type(kind)}{' NOT NULL' if name in table.key else ''}"
            for name, kind in table.columns.items()
        )
        key, clustered = ", ".join(table.key), self.clustered(table)
        statements = [f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, PRIMARY KEY ({key})){clustered}"]
        for index in table.indexes:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {table.name}__{'_'.join(index)} ON {table.name} ({', '.join(index)})"
            )
        return statements

    def clustered(self, table: Table) -> str:
        """What makes a table's rows live in its key's B-tree (PostgreSQL has no such option)."""
        return ""

    def insert_sql(self, table: str, columns: Sequence[str]) -> str:
        marks = ", ".join("?" * len(columns))
        return self.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})")

    # -- convenience ------------------------------------------------------------------
    def query(self, text: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a read-only statement (already in this dialect's placeholder style)."""
        with self.lock:
            return self._query(text, params)

    def _query(self, text: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self.cursor()
        try:
            cur.execute(text, tuple(params))
            columns = [d[0] for d in cur.description or ()]
            return columns, [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tracking ---------------------------------------------------------------------
    def ensure_tracking(self) -> None:
        with self.transaction() as cur:
            self.lock_schema(cur)
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} ("
                "name TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, "
                "position BIGINT NOT NULL, updated_at TEXT NOT NULL)"
            )

    def positions(self, cur: Any | None = None, *, lock: Sequence[str] = ()) -> dict[str, tuple[int, int]]:
        """``name -> (version, position)``; with ``lock``, those rows are locked for this transaction.

        On PostgreSQL the rows are locked in name order so two runners cannot deadlock;
        on SQLite the transaction already holds the only write lock.
        """
        sql = f"SELECT name, version, position FROM {TRACKING_TABLE}"
        params: list[Any] = []
        if lock:
            sql += f" WHERE name IN ({', '.join('?' * len(lock))}) ORDER BY name"
            params = sorted(lock)
            if self.dialect == "postgres":
                sql += " FOR UPDATE"
        if cur is None:
            _, rows = self.query(self.sql(sql), params)
        else:
            cur.execute(self.sql(sql), params)
            rows = cur.fetchall()
        return {name: (int(version), int(position)) for name, version, position in rows}

    def set_position(self, cur: Any, name: str, version: int, position: int) -> None:
        now = datetime.now(UTC).isoformat()
        cur.execute(
            self.sql(
                f"INSERT INTO {TRACKING_TABLE} (name, version, position, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET version = excluded.version, position = excluded.position, "
                "updated_at = excluded.updated_at"
            ),
            (name, version, position, now),
        )

    def reset_tables(self, cur: Any, tables: Sequence[Table], *, drop: bool, indexes: bool = True) -> None:
        """(Re)create tables; ``indexes=False`` leaves secondary indexes for ``create_indexes``.

        A rebuild loads faster into bare tables and builds each index once at the end.
        """
        for table in tables:
            if drop:
                cur.execute(f"DROP TABLE IF EXISTS {table.name}")
            for statement in self.ddl(table)[: None if indexes else 1]:
                cur.execute(statement)

    def create_indexes(self, cur: Any, tables: Sequence[Table]) -> None:
        for statement in self.index_statements(tables):
            cur.execute(statement)

    def index_statements(self, tables: Sequence[Table]) -> list[str]:
        """The statements that create ``tables``' secondary indexes (each does nothing if its index exists)."""
        return [statement for table in tables for statement in self.ddl(table)[1:]]


class SQLiteDatabase(Database):
    dialect = "sqlite"
    placeholder = "?"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=LOCK_TIMEOUT, check_same_thread=False)
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
            # Safe for read models: a power cut can lose the last batches but never splits
            # a batch from its tracking position, so the runner simply re-applies them.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            # Read models are B-trees keyed by ids in random order: a rebuild touches pages all
            # over them, and a cache of SQLite's default 2 MB rereads them from the OS all the time.
            self.conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")

    def cursor(self) -> sqlite3.Cursor:
        return self.conn.cursor()

    @contextmanager
    def bulk(self, on: bool = True) -> Iterator[None]:
        """No automatic checkpoints until the end, then one.

        By default each commit that leaves the write-ahead log over 1,000 pages copies it
        into the database file: in a rebuild, about a third of the write time, and hot
        pages (a B-tree's inner pages, a table's last page) are copied again at every
        checkpoint. One checkpoint at the end copies each page once. (The log grows
        meanwhile: by about the size of the rows written.)
        """
        if not on or self.path == ":memory:":
            yield
            return
        with self.lock:
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
        try:
            yield
        finally:
            with self.lock:
                self.conn.execute("PRAGMA wal_autocheckpoint=1000")  # SQLite's default
            self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, up to what no reader still needs.

        Passive: it never waits for readers or writers, and writers go on meanwhile (the
        log is shared by every connection, so this copies other runners' pages too).
        """
        if self.path != ":memory:":
            with self.lock:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def clustered(self, table: Table) -> str:
        # An INTEGER key already is the rowid. Any other key would get a B-tree of its own
        # beside the table's, and every write would change both.
        single_integer = len(table.key) == 1 and table.columns[table.key[0]] is ColumnType.INT
        return "" if single_integer else " WITHOUT ROWID"

    @contextmanager
    def transaction(self, waiting: Callable[[], bool] | None = None) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            cur = self.conn.cursor()
            self._begin(cur, waiting)
            try:
                yield cur
            except BaseException:
                self.conn.rollback()
                raise
            else:
                self.conn.commit()
            finally:
                cur.close()

    def _begin(self, cur: sqlite3.Cursor, waiting: Callable[[], bool] | None = None) -> None:
        """Take the write lock, trying again every ``LOCK_POLL`` seconds while another runner holds it.

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries, so a
        runner waiting for another's commit of 30 ms slept on average 20 ms past it: with two
        runners catching up side by side (``projections.worker``), 47 waits cost the second
        one 2 s of a 1M-event rebuild. Trying again at once is a system call; nothing is
        written until the lock is held. While the lock is busy, ``waiting`` works (see
        ``transaction``), and the lock is tried again after each piece of its work.
        """
        deadline = time.monotonic() + LOCK_TIMEOUT
        self.conn.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                        raise
                if waiting is not None:
                    if waiting():
                        continue
                    waiting = None
                time.sleep(LOCK_POLL)
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT * 1000)}")

    def table_exists(self, name: str) -> bool:
        _, rows = self.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
        return bool(rows)

    def close(self) -> None:
        self.conn.close()

    def __repr__(self) -> str:
        return f"<SQLiteDatabase {self.path}>"


class PostgresDatabase(Database):
    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        from psycopg.conninfo import make_conninfo

        from marketplace.config import postgres_env

        super().__init__()
        env = postgres_env(url)
        self.url = url
        self._conninfo = make_conninfo(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"],
        )
        self.conn = self._connect()

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self._conninfo, autocommit=True)
        # Read models are derived data: a crash may lose the last few commits (each batch
        # with its tracking position, never one without the other) and the runner simply
        # applies them again. Not waiting for each commit's WAL flush speeds every batch.
        conn.execute("SET synchronous_commit = off")
        return conn

    def reconnect_if_broken(self) -> None:
        with self.lock:
            if self.conn.closed or self.conn.broken:
                self.conn = self._connect()

    def cursor(self) -> Any:
        return self.conn.cursor()

    @contextmanager
    def transaction(self, waiting: Callable[[], bool] | None = None) -> Iterator[Any]:
        # PostgreSQL has no database-wide write lock to wait for: ``waiting`` never runs.
        with self.lock, self.conn.transaction(), self.conn.cursor() as cur:
            yield cur

    def lock_schema(self, cur: Any) -> None:
        # Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalogue.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('shuyun.projections.schema'))")

    def table_exists(self, name: str) -> bool:
        _, rows = self.query("SELECT to_regclass(%s) IS NOT NULL", (name,))
        return bool(rows and rows[0][0])

    def copy_rows(self, cur: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) < COPY_THRESHOLD:
            cur.executemany(self.insert_sql(table, columns), rows)
            return
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    stages = True

    def stage_rows(self, cur: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        stage = stage_name(table)
        # Made afresh in each transaction (dropped at its end), so it always has the table's
        # current columns, even after a rebuild changed them.
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DROP")
        cur.execute(f"TRUNCATE {stage}")
        with cur.copy(f"COPY {stage} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def close(self) -> None:
        self.conn.close()

    def __repr__(self) -> str:
        return f"<PostgresDatabase {self.conn.info.dbname}@{self.conn.info.host}>"


def connect(config: Config) -> Database:
    """The read-model database beside the configured event store."""
    if config.database_url:
        return PostgresDatabase(config.database_url)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteDatabase(str(config.sqlite_path))


def memory() -> SQLiteDatabase:
    """A private in-memory database: for time travel and tests, gone when closed."""
    return SQLiteDatabase(":memory:")


# -- executing row operations -------------------------------------------------------------

#: Each kind of row operation as a small int: what ``OpPlanner.plan`` dispatches on.
INSERT, UPSERT, UPDATE, DELETE, INCREMENT = range(5)
_OP_KINDS: dict[type, int] = {Insert: INSERT, Upsert: UPSERT, Update: UPDATE, Delete: DELETE, Increment: INCREMENT}
_KIND_NAMES = ("insert", "upsert", "update", "delete", "increment")
#: Per table, the statements to run in order: (shape, rows of parameters).
Plan = dict[str, list[tuple[tuple[Any, ...], list[Sequence[Any]]]]]


#: ``bytes.translate`` tables: each kind of operation to 1 if it is an insert (an increment), else 0.
_IS_INSERT = bytes(int(kind == INSERT) for kind in range(256))
_IS_INCREMENT = bytes(int(kind == INCREMENT) for kind in range(256))
_TABLE, _ROW = itemgetter(0), itemgetter(1)


def op_kinds(ops: Sequence[Any]) -> bytes:
    """The kind of every operation, in order; refuses anything that is not a row operation."""
    try:
        return bytes(map(_OP_KINDS.__getitem__, map(type, ops)))
    except KeyError:
        bad = next(op for op in ops if type(op) not in _OP_KINDS)
        raise ProjectionError(f"not a row operation: {bad!r}") from None



class OpPlanner:
    """Turns row operations into as few statements as their order allows (no database needed).

    Operations on different tables commute (read-model tables have no foreign keys,
    triggers or unique constraints beyond the key), and so do operations on different
    rows of one table. Only operations on the same row must keep their order. So each
    operation goes to the "wave" after the previous operation on its row, and within a
    wave (where every row appears at most once) all operations of the same shape become
    one ``executemany`` (or COPY). A batch in which every unit got a registration, some
    members and a decision then takes a handful of statements, not one per event.
    """

    def __init__(self, tables: Mapping[str, Table]) -> None:
        self.tables = dict(tables)
        #: per table: its key from an inserted row, the row's width, its key from a mapping (one
        #: column: the value itself, several: a tuple), as C-speed getters
        self._keys = {
            name: (itemgetter(*(t.column_names.index(c) for c in t.key)), len(t.column_names), itemgetter(*t.key))
            for name, t in self.tables.items()
        }
        self._columns = {name: {c: i for i, c in enumerate(t.column_names)} for name, t in self.tables.items()}

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise ProjectionError(f"row operation names table {name!r}, which no projection here declares") from None

    def plan(self, ops: Sequence[Op]) -> Plan:
        """Per table, the statements to run in order: ``(shape, rows of parameters)``.

        Consecutive operations on one row are first folded into one where the result is
        the same (an insert and the updates after it become one insert; updates and
        upserts merge their columns; increments add up): a rebuild sees a row's whole
        early history in one batch, and every statement saved is a B-tree search saved.
        """
        kinds = op_kinds(ops)
        if kinds.count(INSERT) + kinds.count(INCREMENT) == len(kinds):
            appended = self._appended(kinds, ops)
            if appended is not None:
                return appended
        # Per table: the last slot of each row, the slots in order, and the key getters (one
        # lookup per operation: this loop runs for every operation of a rebuild).
        per_table: dict[str, tuple[dict[Any, list[Any]], list[list[Any]], Any, int, Any]] = {}
        for kind, op in zip(kinds, ops, strict=True):
            name = op[0]
            entry = per_table.get(name)
            if entry is None:
                self.table(name)
                entry = per_table[name] = ({}, [], *self._keys[name])
            last, slots, of_row, width, of_mapping = entry
            given: Any = op[1]
            key: Any
            try:  # (inserts are the bulk of a rebuild: the cheapest path)
                key = (of_row(given) if len(given) == width else object()) if kind == INSERT else of_mapping(given)
            except (KeyError, TypeError, IndexError):
                key = object()  # a malformed operation: never folded, its statement says what is wrong
            try:
                previous = last.get(key)
            except TypeError:
                raise ProjectionError(
                    f"{_KIND_NAMES[kind]} on {name}: key values must be scalars, got {key!r}"
                ) from None
            if previous is None:
                slot = [0, kind, op]
            else:
                merged = self._fold(previous[1], previous[2], kind, op)
                if merged is not None:
                    previous[1], previous[2] = merged
                    continue
                slot = [previous[0] + 1, kind, op]
            last[key] = slot
            slots.append(slot)
        plan: Plan = {}
        shape_of = self._shape
        for name, (_, slots, *_getters) in per_table.items():
            groups: dict[tuple[int, tuple[Any, ...]], list[Sequence[Any]]] = {}
            insert_shape = ("insert", name)
            shape: tuple[Any, ...]
            for wave, kind, op in slots:
                if kind == INSERT:
                    shape, params = insert_shape, op[1]
                elif kind == UPSERT:  # the other common case, inline
                    row = op[1]
                    shape, params = ("upsert", name, tuple(row)), tuple(row.values())
                else:
                    shape, params = shape_of(kind, op)
                group = groups.get((wave, shape))
                if group is None:
                    groups[(wave, shape)] = [params]
                else:
                    group.append(params)
            plan[name] = [(ws[1], rows) for ws, rows in sorted(groups.items(), key=lambda item: item[0][0])]
        return plan

    def _appended(self, kinds: bytes, ops: Sequence[Sequence[Any]]) -> Plan | None:
        """The plan of inserts of distinct new rows and of increments (an audit trail's batch: its
        rows and its counts): one statement per table and shape.

        Nothing to order: inserts of distinct rows commute, and increments add up per row.
        So the per-row bookkeeping of ``plan`` is skipped, and the operations are sorted
        out at C speed; None when two inserts share a key, a table gets both inserts and
        increments, or an operation is malformed (then ``plan`` keeps their order and the
        statement reports the problem).
        """
        inserts = list(compress(ops, kinds.translate(_IS_INSERT)))
        names = set(map(_TABLE, inserts))
        for name in names:
            self.table(name)
        rows_of: dict[str, list[Sequence[Any]]] = (
            {name: list(map(_ROW, inserts)) for name in names} if len(names) == 1  # the common case
            else {name: [op[1] for op in inserts if op[0] == name] for name in names}
        )
        sums_of = self._summed(list(compress(ops, kinds.translate(_IS_INCREMENT))))
        if sums_of is None or not rows_of.keys().isdisjoint(sums_of):
            return None
        for name, rows in rows_of.items():
            of_row, width, _ = self._keys[name]
            if any(len(row) != width for row in rows):
                return None
            try:
                if len(set(map(of_row, rows))) != len(rows):
                    return None
            except TypeError:  # an unhashable key value: ``plan`` names it
                return None
        plan: Plan = {name: [(("insert", name), rows)] for name, rows in rows_of.items()}
        for name, sums in sums_of.items():
            groups: dict[tuple[Any, ...], list[Sequence[Any]]] = {}
            for key_given, deltas in sums.values():
                shape = ("increment", name, tuple(key_given), tuple(deltas))
                params = (*key_given.values(), *deltas.values())
                group = groups.get(shape)
                if group is None:
                    groups[shape] = [params]
                else:
                    group.append(params)
            plan[name] = list(groups.items())
        return plan

    def _summed(self, increments: Sequence[Sequence[Any]]) -> dict[str, dict[Any, tuple[Any, dict[str, Any]]]] | None:
        """Per table, each row's key (as first given) and its deltas added up; None if an increment is malformed
        (a key column missing or not a scalar, a delta not a number: ``plan`` says which).

        A mapping tends to give its events the very same operation object (one more event
        of a kind): those are counted at C speed, and an integer delta times its count is
        their sum, in any order. With any other delta the operations are added up one by
        one, in order, as ``plan`` folds them.
        """
        sums_of: dict[str, dict[Any, tuple[Any, dict[str, Any]]]] = {}
        try:
            times = Counter(map(id, increments))
            by_id = dict(zip(map(id, increments), increments, strict=True))
            if all(type(delta) is int for op in by_id.values() for delta in op[2].values()):
                weighted = [(op, times[op_id]) for op_id, op in by_id.items()]
            else:
                weighted = [(op, 1) for op in increments]
            for op, count in weighted:
                name = op[0]
                sums = sums_of.get(name)
                if sums is None:
                    self.table(name)
                    sums = sums_of[name] = {}
                key = self._keys[name][2](op[1])
                summed = sums.get(key)
                if summed is None:
                    summed = sums[key] = (op[1], {})
                deltas = summed[1]
                for column, delta in op[2].items():
                    deltas[column] = deltas.get(column, 0) + delta * count
        except (KeyError, TypeError, IndexError, AttributeError, ValueError):
            return None
        return sums_of

    def _fold(self, first_kind: int, first: Sequence[Any], kind: int, then: Sequence[Any]) -> tuple[int, Any] | None:
        """One operation with the effect of ``first`` then ``then`` on the same row, if there is one."""
        if kind in (UPDATE, UPSERT):
            values: Mapping[str, Any] = then[2] if kind == UPDATE else then[1]
            if first_kind == INSERT:
                index = self._columns[first[0]]
                row = list(first[1])
                try:
                    for column, value in values.items():
                        row[index[column]] = value
                except KeyError:
                    return None  # an unknown column: let the statement report it
                return INSERT, Insert(first[0], tuple(row))
            if first_kind == UPSERT:
                return UPSERT, Upsert(first[0], {**first[1], **values})
            if first_kind == UPDATE and kind == UPDATE:
                return UPDATE, Update(first[0], first[1], {**first[2], **values})
            return None
        if kind == DELETE and first_kind == UPSERT:
            # The delete undoes the upsert whatever the row held: only the delete need run, if
            # the upsert names no unknown column (then its statement must report it).
            index = self._columns[first[0]]
            return (DELETE, then) if all(column in index for column in first[1]) else None
        if kind == INCREMENT and first_kind == INCREMENT:
            deltas = dict(first[2])
            for column, delta in then[2].items():
                deltas[column] = deltas.get(column, 0) + delta
            return INCREMENT, Increment(first[0], first[1], deltas)
        return None

    @staticmethod
    def _shape(kind: int, op: Sequence[Any]) -> tuple[tuple[Any, ...], Sequence[Any]]:
        name = op[0]
        if kind == UPSERT:
            return ("upsert", name, tuple(op[1])), tuple(op[1].values())
        if kind == UPDATE:
            return ("update", name, tuple(op[1]), tuple(op[2])), (*op[2].values(), *op[1].values())
        if kind == DELETE:
            return ("delete", name, tuple(op[1])), tuple(op[1].values())
        if kind == INCREMENT:
            return ("increment", name, tuple(op[1]), tuple(op[2])), (*op[1].values(), *op[2].values())
        return ("insert", name), op[1]



class OpWriter(OpPlanner):
    """Executes planned statements (``OpPlanner``) in one database's dialect."""

    def __init__(self, db: Database, tables: Mapping[str, Table]) -> None:
        super().__init__(tables)
        self.db = db
        self._sql: dict[tuple[Any, ...], str] = {}
        self._staged: dict[tuple[Any, ...], tuple[tuple[str, ...], str]] = {}

    def statement(self, shape: tuple[Any, ...]) -> str:
        sql = self._sql.get(shape)
        if sql is None:
            sql = self._sql[shape] = self._render(shape)
        return sql

    def _render(self, shape: tuple[Any, ...]) -> str:
        kind, name = shape[0], shape[1]
        table = self.table(name)

        def check_key(columns: Sequence[str]) -> None:
            if set(columns) != set(table.key):
                raise ProjectionError(f"{kind} on {name} must name exactly its key {table.key}, got {tuple(columns)}")

        def check_columns(columns: Sequence[str]) -> None:
            unknown = [c for c in columns if c not in table.columns]
            if unknown:
                raise ProjectionError(f"{kind} on {name}: unknown columns {unknown}")

        key_list = ", ".join(table.key)
        if kind == "insert":
            return self.db.insert_sql(name, table.column_names)
        if kind == "upsert":
            columns = shape[2]
            check_columns(columns)
            if not set(table.key) <= set(columns):
                raise ProjectionError(f"upsert on {name} must include its key {table.key}")
            rest = [c for c in columns if c not in table.key]
            action = (
                "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest) if rest else "DO NOTHING"
            )
            return self.db.insert_sql(name, columns) + f" ON CONFLICT ({key_list}) {action}"
        if kind == "update":
            key, values = shape[2], shape[3]
            check_key(key)
            check_columns(values)
            sets = ", ".join(f"{c} = ?" for c in values)
            where = " AND ".join(f"{c} = ?" for c in key)
            return self.db.sql(f"UPDATE {name} SET {sets} WHERE {where}")
        if kind == "delete":
            check_key(shape[2])
            return self.db.sql(f"DELETE FROM {name} WHERE " + " AND ".join(f"{c} = ?" for c in shape[2]))
        if kind == "increment":
            key, deltas = shape[2], shape[3]
            check_key(key)
            check_columns(deltas)
            bad = [c for c in deltas if table.columns[c] not in (ColumnType.INT, ColumnType.FLOAT)]
            if bad:
                raise ProjectionError(f"increment on {name}: columns {bad} are not numeric")
            sets = ", ".join(f"{c} = COALESCE({name}.{c}, 0) + excluded.{c}" for c in deltas)
            return self.db.insert_sql(name, (*key, *deltas)) + f" ON CONFLICT ({key_list}) DO UPDATE SET {sets}"
        raise ProjectionError(f"unknown operation kind {kind}")  # pragma: no cover

    def execute(self, cur: Any, ops: Sequence[Op]) -> None:
        """Plan ``ops`` and run the statements in ``cur``'s transaction."""
        self.run(cur, self.plan(ops))

    def run(self, cur: Any, plan: Plan) -> None:
        """Run planned statements in ``cur``'s transaction."""
        for name, runs in plan.items():
            for shape, params in runs:
                if shape[0] == "insert":
                    self.db.copy_rows(cur, name, self.table(name).column_names, params)
                elif self.db.stages and len(params) >= COPY_THRESHOLD:
                    columns, merge = self.staged(shape)
                    self.db.stage_rows(cur, name, columns, params)
                    cur.execute(merge)
                else:
                    cur.executemany(self.statement(shape), params)

    def staged(self, shape: tuple[Any, ...]) -> tuple[tuple[str, ...], str]:
        """For a database that ``stages``: the columns of a statement's parameters, in order, and the
        one statement that applies them all from the staging table.

        One set-based statement instead of one per row: on PostgreSQL each row of an
        ``executemany`` is a round of the server's executor, most of the cost of a rebuild.
        A wave names each row once, so one statement may touch every row of it.
        """
        cached = self._staged.get(shape)
        if cached is not None:
            return cached
        self.statement(shape)  # the same checks of keys and columns as row by row
        kind, name = shape[0], shape[1]
        table = self.table(name)
        stage = stage_name(name)
        key_list = ", ".join(table.key)
        joined = " AND ".join(f"{name}.{c} = s.{c}" for c in table.key)
        columns: tuple[str, ...]
        if kind == "upsert":
            columns = shape[2]
            rest = [c for c in columns if c not in table.key]
            action = "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest) if rest else "DO NOTHING"
            merge = (f"INSERT INTO {name} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {stage} "
                     f"ON CONFLICT ({key_list}) {action}")
        elif kind == "update":
            columns = (*shape[3], *shape[2])
            sets = ", ".join(f"{c} = s.{c}" for c in shape[3])
            merge = f"UPDATE {name} SET {sets} FROM {stage} s WHERE {joined}"
        elif kind == "delete":
            columns = shape[2]
            merge = f"DELETE FROM {name} USING {stage} s WHERE {joined}"
        else:  # increment
            columns = (*shape[2], *shape[3])
            sets = ", ".join(f"{c} = COALESCE({name}.{c}, 0) + excluded.{c}" for c in shape[3])
            merge = (f"INSERT INTO {name} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {stage} "
                     f"ON CONFLICT ({key_list}) DO UPDATE SET {sets}")
        self._staged[shape] = (columns, merge)
        return columns, merge


def stage_name(table: str) -> str:
    """The session's staging table for ``table``'s set-based statements."""
    return f"stage_{table}"


# -- Polars frames ---------------------------------------------------------------------------


def table_spec(name: str) -> Table | None:
    """The declaration of a registered read-model table, if there is one."""
    from projections.registry import all_projections

    for projection in all_projections():
        for table in projection.tables:
            if table.name == name:
                return table
    return None


def frame_from_rows(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], types: Mapping[str, ColumnType] | None = None
) -> pl.DataFrame:
    """Rows to a frame; declared columns get their portable dtype whatever the driver returned."""
    import polars as pl

    types = types or {}
    data = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    series = []
    for name, values in zip(columns, data, strict=True):
        kind = types.get(name)
        if kind is None:
            series.append(pl.Series(name, list(values), strict=False))
        elif kind is ColumnType.TIMESTAMP:
            if any(isinstance(v, str) for v in values):
                series.append(pl.Series(name, list(values), dtype=pl.String).str.to_datetime(time_zone="UTC"))
            else:
                series.append(pl.Series(name, list(values), dtype=_polars_type(kind), strict=False))
        elif kind is ColumnType.BOOL:
            series.append(pl.Series(name, [None if v is None else bool(v) for v in values], dtype=pl.Boolean))
        else:
            series.append(pl.Series(name, list(values), dtype=_polars_type(kind), strict=False))
    return pl.DataFrame(series)


def _open(source: Config | Database) -> tuple[Database, bool]:
    if isinstance(source, Database):
        return source, False
    return connect(source), True


def read_frame(
    source: Config | Database, query: str | Table, params: Sequence[Any] = (),
) -> pl.DataFrame:
    """A read model (by table name or ``Table``) or any SQL query on it, as a Polars DataFrame.

    A whole table comes back ordered by its key, with the declared dtypes; a query is
    written in the store's own placeholder style (``?`` on SQLite, ``%s`` on PostgreSQL).
    """
    db, own = _open(source)
    try:
        if isinstance(query, Table) or _IDENTIFIER.match(query.strip()):
            name = query.name if isinstance(query, Table) else query.strip()
            spec = query if isinstance(query, Table) else table_spec(name)
            if not db.table_exists(name):
                raise ProjectionError(f"read model table {name} does not exist yet: run the projections")
            if spec is None:
                columns, rows = db.query(f"SELECT * FROM {name}")
                return frame_from_rows(columns, rows)
            columns, rows = db.query(f"SELECT * FROM {name} ORDER BY {', '.join(spec.key)}")
            return frame_from_rows(columns, rows, spec.columns)
        columns, rows = db.query(query, params)
        return frame_from_rows(columns, rows)
    finally:
        if own:
            db.close()


def scan_frame(source: Config | Database, query: str | Table, params: Sequence[Any] = ()) -> pl.LazyFrame:
    """The same as ``read_frame`` as a LazyFrame, to compose with further Polars operations."""
    return read_frame(source, query, params).lazy()
