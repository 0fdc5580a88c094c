"""Per-frame metrics of one study x tier, in slice order, from the Parquet quality dataset.

The dataset lives under the data folder (``$DCMTIER_DATA_DIR``, else the output root the
study's package was written under: a folder, or an object store URL read through
`dcmtier.storage.access`): ``quality/tier=<tier>/study=<study>/part-0.parquet``. When the
api-server cannot read it (another host, not mounted, no credentials for the store), the
catalogue's ``frame_quality`` rows stand in, with each instance's pixel ratio for its frames.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, text

from dcmtier.errors import StorageError
from dcmtier.measure.store import QualityStoreError, partition_dir
from dcmtier.storage import access
from dcmtier.ui.queries import uid_order

DATA_DIR_ENV: Final = "DCMTIER_DATA_DIR"
COLUMNS: Final = (
    "series_uid", "source_sop_uid", "frame", "psnr_db", "ssim", "max_abs_diff", "pixel_ratio",
    "unit",
)  # fmt: skip
RANGE_COLUMNS: Final = ("psnr_db_range", "ssim_range", "data_range")  # absent before schema 3


@dataclass(frozen=True)
class Frame:
    series_uid: str
    source_sop_uid: str
    frame: int
    psnr_db: float
    ssim: float | None
    max_abs_diff: float
    pixel_ratio: float
    unit: str
    # against the frame's own range, as gates judge (None when measured before it was recorded)
    psnr_db_range: float | None = None
    ssim_range: float | None = None
    data_range: float | None = None

    @property
    def psnr_judged(self) -> float:
        """The PSNR the gates judge: against the frame's range, else the nominal one."""
        return self.psnr_db if self.psnr_db_range is None else self.psnr_db_range


@dataclass(frozen=True)
class Frames:
    rows: list[Frame]
    source: str  # "Parquet" or "catalogue": said on the page

    def worst(self) -> Frame | None:
        """The frame with the lowest PSNR against its range (largest difference on ties); None
        if all exact."""
        lossy = [f for f in self.rows if not math.isinf(f.psnr_db)]
        return min(lossy, key=lambda f: (f.psnr_judged, -f.max_abs_diff)) if lossy else None


def data_dir(package_uri: str | None) -> str | None:
    """``$DCMTIER_DATA_DIR``, else the output root (a folder or a store URL) holding
    ``packages/<study>/<tier>.zip``."""
    if configured := os.environ.get(DATA_DIR_ENV):
        return configured
    path = access.local_path(package_uri) if package_uri else None
    if path is not None and len(path.parents) <= 2:
        return None
    return access.parent(package_uri, 3) if package_uri else None


def read_frames(
    connection: Connection, study_uid: str, tier: str, package_uri: str | None
) -> Frames:
    """The study x tier's frames in slice order (series, then SOP UID, then frame)."""
    root = data_dir(package_uri)
    rows = _from_parquet(root, study_uid, tier) if root is not None else None
    source = "Parquet"
    if rows is None:
        rows, source = _from_catalogue(connection, study_uid, tier), "catalogue"
    rows.sort(key=lambda f: (f.series_uid, uid_order(f.source_sop_uid), f.frame))
    return Frames(rows, source)


def _from_parquet(root: str, study_uid: str, tier: str) -> list[Frame] | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        part = partition_dir(Path("quality"), tier=tier, study_uid=study_uid) / "part-0.parquet"
        data = access.read_bytes(access.join(root, *part.parts))
        table = pq.read_table(pa.BufferReader(data))
    except (OSError, QualityStoreError, StorageError):
        return None
    present = [c for c in (*COLUMNS, *RANGE_COLUMNS) if c in table.column_names]
    table = table.select(present)
    return [Frame(**row) for row in table.to_pylist()]


def _from_catalogue(connection: Connection, study_uid: str, tier: str) -> list[Frame]:
    result = connection.execute(
        text("SELECT d.series_uid, d.source_sop_uid, q.frame, q.psnr_db, q.ssim, q.max_abs_diff, "
             "d.pixel_ratio, q.unit, q.psnr_db_range, q.ssim_range, q.data_range "
             "FROM frame_quality q JOIN derived_instances d "
             "ON d.id = q.derived_id WHERE d.study_uid = :s AND d.tier = :t"),
        {"s": study_uid, "t": tier},
    )  # fmt: skip
    return [Frame(*row) for row in result]
