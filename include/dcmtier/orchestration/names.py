"""Task ids of ``dicom_archive_compression`` that the package looks up (the summary's count of
failed compress tasks, a compress task's lineage): one place for the DAG and them. Plain
strings, so parsing the DAG loads nothing."""

COMPRESS = "compress"
# the large units' tasks (`dcmtier.discovery.units`): the same work, in the large pool
ENCODE_LARGE = "encode_large"
COMPRESS_LARGE = "compress_large"
COMPRESS_TASKS = (COMPRESS, COMPRESS_LARGE)
