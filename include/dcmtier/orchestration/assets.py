"""The Airflow assets the pipeline updates, as (name, URI): one place for the DAG that emits
their events and the DAGs scheduled on them. Plain strings, so parsing a DAG loads nothing."""

QUALITY_ASSET = ("dcmtier_quality", "dcmtier://quality")
PACKAGES_ASSET = ("dcmtier_packages", "dcmtier://packages")
