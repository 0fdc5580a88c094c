"""Object storage: output roots that are fsspec URLs (``s3://``, ``gs://``, ``az://``...).

- ``store``: a remote output root (objects under keys relative to it), credentials from the
  store's standard environment variables or an Airflow connection, and each worker's local
  scratch folder.
- ``dicomweb``: a DICOMweb archive (QIDO-RS, WADO-RS as stored, STOW-RS), its credentials;
- ``multipart``: the ``multipart/related`` bodies DICOMweb sends and receives;
- ``access``: reading one output by its path, ``file://`` URI or store URL (open, stream,
  stat, download), for what reads outputs after a run (the compression pages).

May import: the root modules only (``discovery``, ``work`` and ``ui`` use it).
"""
