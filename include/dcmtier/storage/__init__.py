"""Object storage: output roots that are fsspec URLs (``s3://``, ``gs://``, ``az://``...).

- ``store``: a remote output root (objects under keys relative to it), credentials from the
  store's standard environment variables or an Airflow connection, and each worker's local
  scratch folder.

May import: the root modules only (``discovery`` and ``work`` both use it).
"""
