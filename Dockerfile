# The dcmtier image: Airflow 3.3.2 with the pinned requirements and the dcmtier package.
FROM apache/airflow:3.3.2-python3.11

USER root
# Debian tools for checking outputs by hand (gdcmconv, opj_decompress, dciodvfy).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgdcm-tools libopenjp2-tools dicom3tools \
 && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root requirements.txt /opt/dcmtier/requirements.txt
RUN pip install --no-cache-dir -r /opt/dcmtier/requirements.txt
COPY --chown=airflow:root pyproject.toml README.md /opt/dcmtier/
COPY --chown=airflow:root include /opt/dcmtier/include
RUN pip install --no-cache-dir --no-deps /opt/dcmtier
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
