"""The discovery stage: what is in a landing area, and what a run should do with it.

- ``landing``: local folders, fsspec URLs and DICOMweb archives, listing and header reads;
- ``index``: the landing index kept current (headers read only for new or changed files);
- ``dicomweb``: the same for a DICOMweb archive (QIDO-RS searches, metadata of unseen instances);
- ``stats``: what one pass did (``dcmtier discover --json``);
- ``files``: local files grouped into studies by StudyInstanceUID (the command line);
- ``plan``: the DAG's discovery: settled studies of the run's interval, not yet done, capped.

May import: ``dcmtier.catalogue``, ``dcmtier.storage``, ``dcmtier.records``, ``dcmtier.tiers``,
``dcmtier.errors``.
"""
