"""The discovery stage: what is in a landing area, and what a run should do with it.

- ``landing``: local folders and fsspec URLs, listing and header reads;
- ``files``: local files grouped into studies by StudyInstanceUID (the command line);
- ``plan``: the DAG's discovery: settled studies of the run's interval, not yet done, capped.

May import: ``dcmtier.catalogue``, ``dcmtier.records``, ``dcmtier.tiers``, ``dcmtier.errors``.
"""
