"""What the Airflow tasks call: the DAG's task bodies and its work items, runnable without
Airflow.

- ``tasks``: reads the Airflow context once, then calls the functions below;
- ``items``: runs one study x tier, the layered encode of a study, the run's summary.

May import: ``discovery``, ``work``, and everything they may import. Only ``tasks`` touches
Airflow, and only inside functions.
"""
