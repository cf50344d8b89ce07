"""Reading the store's notification log in order, fast, from any process.

The runner pulls the log itself (SQLite has no subscriptions, and eventsourcing's
in-process system misses other processes' events). For speed it reads the events table
with its own connection and plain tuples, skipping the per-row objects that
``recorder.select_notifications`` builds; stores it does not know are read through
``select_notifications`` instead. Notification ids are committed in order on both stores
(SQLite has one writer; eventsourcing's PostgreSQL recorder takes a table lock for each
insert), so once id ``n`` is visible every smaller id that will ever exist is too: a
position is safe to advance up to the highest id seen.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from projections.base import Codec
from projections.db import Database, PostgresDatabase, SQLiteDatabase

if TYPE_CHECKING:
    from eventsourcing.application import Application

    from marketplace.config import Config

#: (notification id, originator id as stored, originator version, topic, state bytes)
RawNotification = tuple[int, Any, int, str, bytes]


class EventLog:
    """The application's notification log; ``read`` returns raw rows, ``codec`` decodes them."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    @classmethod
    def open(cls, app: Application[Any], config: Config | None = None) -> EventLog:
        """The fastest reader this store allows (own connection on SQLite and PostgreSQL)."""
        from eventsourcing.sqlite import SQLiteApplicationRecorder

        recorder = app.recorder
        codec = Codec(app.mapper)
        if isinstance(recorder, SQLiteApplicationRecorder):
            db_name = recorder.datastore.pool.db_name
            if not recorder.datastore.pool.is_sqlite_memory_mode:
                return SQLEventLog(SQLiteDatabase(db_name), recorder.events_table_name, "rowid", codec)
        # A PostgreSQL recorder's module is loaded by whoever made it: a runner on SQLite (a
        # rebuild's helper process among them) need not import psycopg, a fifth of its start.
        postgres = sys.modules.get("eventsourcing.postgres")
        if postgres is not None and isinstance(recorder, postgres.PostgresApplicationRecorder) \
                and config is not None and config.database_url:
            table = f"{recorder.datastore.schema}.{recorder.events_table_name}"
            return SQLEventLog(PostgresDatabase(config.database_url), table, "notification_id", codec)
        return RecorderEventLog(recorder, codec)

    def max_id(self) -> int:
        raise NotImplementedError

    def read(self, after: int, stop: int, limit: int, topics: Sequence[str] | None = None) -> list[RawNotification]:
        """Notifications with ``after < id <= stop``, in order, at most ``limit`` (of ``topics`` only, if given)."""
        raise NotImplementedError

    def states(self, ids: Sequence[int]) -> dict[int, bytes]:
        """The stored state (as the store keeps it: ``codec`` decodes it) of each of ``ids`` the log holds."""
        raise NotImplementedError

    def notification_ids(self, originator_id: str) -> list[int] | None:
        """The notification ids of one aggregate's events, in order, found through the store's own
        index on them (its primary key); None if this log cannot look them up."""
        return None

    def close(self) -> None:
        pass


#: Notification ids asked for in one statement by ``SQLEventLog.states`` (below SQLite's limit on parameters).
IDS_PER_READ = 500
#: On PostgreSQL a read's window of ids grows to at most this many times its limit (``SQLEventLog.read``).
MAX_WINDOW_FACTOR = 16


class SQLEventLog(EventLog):
    def __init__(self, db: Database, table: str, id_column: str, codec: Codec) -> None:
        super().__init__(codec)
        self.db = db
        self.table = table
        self.id_column = id_column
        self._select = db.sql(
            f"SELECT {id_column}, originator_id, originator_version, topic, state FROM {table} "
            f"WHERE {id_column} > ? AND {id_column} <= ? "
        )
        self._order = db.sql(f"ORDER BY {id_column} LIMIT ?")

    def max_id(self) -> int:
        _, rows = self.db.query(f"SELECT MAX({self.id_column}) FROM {self.table}")
        return int(rows[0][0] or 0) if rows else 0

    def read(self, after: int, stop: int, limit: int, topics: Sequence[str] | None = None) -> list[RawNotification]:
        if topics is not None and not topics:
            return []
        if self.db.dialect != "postgres":
            return self._read(after, stop, limit, topics)
        # PostgreSQL plans ``id > after AND id <= stop ORDER BY id LIMIT n`` from the events
        # table's statistics; a table just bulk-loaded and not yet analysed has none, and the
        # plan then reads the whole range up to ``stop`` for every batch: 1.4-3.6 s a statement
        # (less as the range shrinks) against 20 ms, in rebuilds that began before autovacuum's
        # ANALYZE came by (a million events: 51-57 s instead of 30). So ids are asked for in
        # windows of ``limit`` ids, doubling while a topic filter leaves them sparse: whatever
        # the plan, a statement looks at no more ids than its window holds.
        rows: list[RawNotification] = []
        window = limit
        while len(rows) < limit and after < stop:
            end = min(stop, after + window)
            rows += self._read(after, end, limit - len(rows), topics)
            after = end
            window = min(window * 2, limit * MAX_WINDOW_FACTOR)
        return rows

    def _read(self, after: int, stop: int, limit: int, topics: Sequence[str] | None) -> list[RawNotification]:
        """One statement: notifications with ``after < id <= stop``, in order, at most ``limit``."""
        sql = self._select
        params: list[Any] = [after, stop]
        if topics is not None:
            if self.db.dialect == "postgres":
                sql += "AND topic = ANY(%s) "
                params.append(list(topics))
            else:
                sql += f"AND topic IN ({', '.join('?' * len(topics))}) "
                params.extend(topics)
        params.append(limit)
        with self.db.lock:
            if self.db.dialect == "postgres":
                # Binary rows and a prepared statement: about twice as fast as text rows,
                # whose hex-encoded ``state`` the driver has to decode.
                with self.db.conn.cursor(binary=True) as cur:  # type: ignore[attr-defined]
                    cur.execute(sql + self._order, params, prepare=True)
                    return list(cur.fetchall())
            cur = self.db.cursor()
            try:
                cur.execute(sql + self._order, params)
                rows: list[RawNotification] = cur.fetchall()
            finally:
                cur.close()
        return rows

    def states(self, ids: Sequence[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), IDS_PER_READ):
            part = wanted[start:start + IDS_PER_READ]
            params: list[Any]
            if self.db.dialect == "postgres":
                among, params = f"= ANY({self.db.placeholder})", [part]
            else:
                among, params = f"IN ({', '.join([self.db.placeholder] * len(part))})", part
            _, rows = self.db.query(f"SELECT {self.id_column}, state FROM {self.table} "
                                    f"WHERE {self.id_column} {among}", params)
            found.update((int(nid), bytes(state)) for nid, state in rows)
        return found

    def notification_ids(self, originator_id: str) -> list[int]:
        try:
            uuid = UUID(originator_id)
        except ValueError:  # a store keyed by text ids keeps them as given
            key: Any = originator_id
        else:  # as each store writes a UUID: PostgreSQL's uuid type, SQLite's 32 hex digits
            key = uuid if self.db.dialect == "postgres" else uuid.hex
        _, rows = self.db.query(f"SELECT {self.id_column} FROM {self.table} WHERE originator_id = "
                                f"{self.db.placeholder} ORDER BY {self.id_column}", [key])
        return [int(row[0]) for row in rows]

    def close(self) -> None:
        self.db.close()


class RecorderEventLog(EventLog):
    """Any eventsourcing recorder, through its public ``select_notifications``."""

    def __init__(self, recorder: Any, codec: Codec) -> None:
        super().__init__(codec)
        self.recorder = recorder

    def max_id(self) -> int:
        return int(self.recorder.max_notification_id() or 0)

    def read(self, after: int, stop: int, limit: int, topics: Sequence[str] | None = None) -> list[RawNotification]:
        if topics is not None and not topics:
            return []
        notifications = self.recorder.select_notifications(
            after, limit, stop=stop, topics=tuple(topics or ()), inclusive_of_start=False
        )
        return [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in notifications]

    def states(self, ids: Sequence[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        for nid in sorted(set(ids)):
            for notification in self.recorder.select_notifications(nid, 1, stop=nid):
                found[notification.id] = notification.state
        return found
