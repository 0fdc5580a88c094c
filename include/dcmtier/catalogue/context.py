"""Who is doing an attempt: the Airflow task instance, or ``cli`` when run by hand."""

from __future__ import annotations

from dataclasses import dataclass

CLI = "cli"


@dataclass(frozen=True)
class JobContext:
    """The Airflow identity of one attempt, recorded on its job row.

    A retry of the same task instance has the same ``dag_id``, ``run_id``, ``task_id`` and
    ``map_index`` and a new ``try_number``, so it is a new attempt row.
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int

    @classmethod
    def cli(cls, run_id: str) -> JobContext:
        """The context of ``dcmtier process`` run by hand."""
        return cls(dag_id=CLI, run_id=run_id, task_id=CLI, map_index=-1, try_number=1)
