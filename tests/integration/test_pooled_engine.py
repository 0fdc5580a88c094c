"""A work unit's pooled catalogue engine on PostgreSQL: connections are reused, advisory holds
never outlive their owner inside the pool, and a forked child leaves its parent's sockets be."""

from __future__ import annotations

import os

from sqlalchemy import text

from dcmtier.catalogue import Catalogue
from dcmtier.catalogue.engine import make_engine

PAIR = ("1.2.826.0.1.3680043.8.498.1", "j2k-r20")


def _backend_pids(catalogue: Catalogue, times: int) -> set[int]:
    pids = set()
    for _ in range(times):
        with catalogue.engine.connect() as connection:
            pids.add(int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one()))
    return pids


def test_a_pooled_engine_reuses_its_connections(postgres: str) -> None:
    pooled = Catalogue(make_engine(postgres, pooled=True))
    plain = Catalogue(make_engine(postgres))
    try:
        assert len(_backend_pids(pooled, 20)) == 1
        assert len(_backend_pids(plain, 3)) == 3  # the default: a connection per use
    finally:
        pooled.close()
        plain.close()


def test_holds_closed_while_holding_free_the_pair_for_another_process(postgres: str) -> None:
    owner = Catalogue(make_engine(postgres, pooled=True))
    other = Catalogue(make_engine(postgres))
    try:
        holds = owner.holds()
        assert holds.try_hold(PAIR)
        theirs = other.holds()
        assert not theirs.try_hold(PAIR)
        holds.close()  # without releasing: the session must end, not go back to the pool
        assert theirs.try_hold(PAIR)
        theirs.close()
        # released one by one, the connection goes back to the pool with no lock on it
        again = owner.holds()
        assert again.try_hold(PAIR)
        again.release(PAIR)
        mine = _backend_pids(owner, 1)
        with owner.engine.connect() as connection:
            locks = connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = :p"),
                {"p": next(iter(mine))},
            ).scalar_one()
        assert locks == 0
    finally:
        owner.close()
        other.close()


def test_a_forked_child_leaves_the_parents_pooled_connection_working(postgres: str) -> None:
    catalogue = Catalogue(make_engine(postgres, pooled=True))
    try:
        (before,) = _backend_pids(catalogue, 1)
        pid = os.fork()
        if pid == 0:  # the child: its own connection, then exit as a batch worker does
            code = 0
            try:
                child = _backend_pids(catalogue, 1)
                code = 0 if before not in child else 3
                catalogue.close()
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert _backend_pids(catalogue, 2) == {before}  # still the same, still usable
    finally:
        catalogue.close()
