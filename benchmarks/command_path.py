"""The command path (service + domain rules + store) vs a bare eventsourcing save.

Workload per store kind: register N application units, then qualify each (one load,
one command, one save). The baseline stores the very same events through the bare
``Application``: aggregates constructed and mutated by their event methods directly,
with no access check, no validation and no existence check. Target: ratio <= 1.3.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import Result, result
from benchmarks.pgcluster import throwaway_postgres
from domain.identity import SYSTEM, Actor, Role
from domain.parties import ApplicationUnit, UnitKind, credit_code_check_char
from marketplace.bootstrap import build
from marketplace.config import Config

ADMIN = Actor("bench-admin", Role.OPERATOR_ADMIN)


def _codes(n: int, salt: str) -> list[str]:
    out = []
    for i in range(n):
        body = f"9115020{salt}{i:09d}"[:17]
        out.append(body + credit_code_check_char(body))
    return out


def _command_path(config: Config, n: int) -> float:
    import time

    mp = build(config)
    try:
        codes = _codes(n, "1")
        start = time.perf_counter()
        ids = []
        for i, code in enumerate(codes):
            applicant = Actor(f"user-{i}", Role.APPLICANT)
            ids.append(mp.parties.register_unit(
                applicant, name=f"包头测试企业{i}", credit_code=code, kind="company",
                contact_email=f"u{i}@example.cn"))
        for unit_id in ids:
            mp.parties.qualify_unit(ADMIN, unit_id, approved=True, reason="资质齐全")
        return time.perf_counter() - start
    finally:
        mp.close()


def _bare_save(config: Config, n: int) -> float:
    import time

    mp = build(config)
    app = mp.app
    try:
        codes = _codes(n, "2")
        start = time.perf_counter()
        ids = []
        for i, code in enumerate(codes):
            unit = ApplicationUnit(
                credit_code=code, name=f"包头测试企业{i}", kind=UnitKind.COMPANY,
                contact_email=f"u{i}@example.cn", admin_user_id=f"user-{i}", by=SYSTEM)
            app.save(unit)
            ids.append(unit.id)
        for unit_id in ids:
            unit = app.repository.get(unit_id)
            unit._qualification_decided(approved=True, reason="资质齐全", by=ADMIN)
            app.save(unit)
        return time.perf_counter() - start
    finally:
        mp.close()


def _measure(kind: str, make_config: object, n: int, rounds: int = 3) -> Result:
    command, bare = float("inf"), float("inf")
    for r in range(rounds):
        # Alternate the order so that warm-up and drift do not favour one side.
        for side in (("bare", "command") if r % 2 else ("command", "bare")):
            config = make_config(f"{side}{r}")  # type: ignore[operator]
            if side == "command":
                command = min(command, _command_path(config, n))
            else:
                bare = min(bare, _bare_save(config, n))
    per_command = command / (2 * n) * 1000
    per_bare = bare / (2 * n) * 1000
    return result(f"command_path_{kind}", per_command, "ms/command", per_bare, "<= 1.3")


def run(scale: float = 1.0) -> list[Result]:
    n = max(20, int(300 * scale))
    tmp = Path(tempfile.mkdtemp(prefix="shuyun-bench-"))
    results = [_measure("sqlite", lambda tag: Config(data_dir=tmp / tag), n)]
    with throwaway_postgres() as url:
        import psycopg

        def pg_config(tag: str) -> Config:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE b_{tag}")
            return Config(data_dir=tmp / tag, database_url=url.rsplit("/", 1)[0] + f"/b_{tag}")

        results.append(_measure("postgres", pg_config, n))
    return results
