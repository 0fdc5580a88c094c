"""What the Airflow tasks call: the DAG's task bodies and its work items, runnable without
Airflow.

- ``tasks``: reads the Airflow context once, then calls the functions below;
- ``items``: runs one study x tier, the layered encode of a study, the run's summary;
- ``lineage``: OpenLineage datasets and facets, and asset-event extras, from a task's result;
- ``operators``: ``@lineage_task``, the ``@task`` whose COMPLETE event carries them;
- ``assets``: the names and URIs of the assets the pipeline updates.

May import: ``discovery``, ``work``, ``viewer`` (the run's optional viewer check), and
everything they may import. ``tasks`` touches Airflow
only inside functions; ``operators`` subclasses Airflow's ``@task`` operator (the DAG files
import it, so it imports nothing heavy).
"""
