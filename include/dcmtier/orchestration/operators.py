"""The ``@lineage_task`` decorator: Airflow's ``@task`` whose COMPLETE OpenLineage event
carries the datasets ``dcmtier.orchestration.lineage`` derives from what the task returned.

It uses the provider's operator-method mechanism (``get_openlineage_facets_on_complete``, read
by its default extractor), so each task instance reports its own datasets: the result is kept
on the operator instance that ran it, never in a process-wide collector that mapped instances
sharing one process (``dag.test()``) would mix. Where no OpenLineage transport is configured the
provider is off and none of this runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk.bases.decorator import task_decorator_factory


class LineagePythonOperator(_PythonDecoratedOperator):
    """A ``@task`` operator that keeps its return value for its OpenLineage COMPLETE event."""

    custom_operator_name = "@task"

    def execute(self, context: Any) -> Any:
        result = super().execute(context)
        self._dcmtier_lineage = (dict(context["params"]), result)
        if isinstance(result, dict) and "pairs" in result:  # a unit's per-study results:
            return {k: v for k, v in result.items() if k != "pairs"}  # lineage only, not XCom
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from dcmtier.orchestration.lineage import task_lineage

        params, result = getattr(self, "_dcmtier_lineage", ({}, None))
        found = task_lineage(self.task_id, result, params) if params else None
        if found is None:
            return OperatorLineage()
        inputs, outputs = found
        return OperatorLineage(inputs=inputs, outputs=outputs)


def lineage_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """``@task`` (same arguments) reporting the task's datasets to OpenLineage.

    The task's dict result is one XCom (``return_value``), not one per key as Airflow infers
    from a ``dict`` return annotation: each XCom is a call to the execution API (about 20 a
    task, 4.4 s of a 60-slice ``dag.test`` run's 67 s under a profiler).
    """
    kwargs.setdefault("multiple_outputs", False)
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=LineagePythonOperator,
        **kwargs,
    )
