"""dcmtier's side of the benchmark: ``compress`` (file to verified file) and the unit of work.

``run_compress`` does what ``dcmtier compress --tier T`` does (read, encode, write, decode
again and compare) and is what the gdcmconv chain is compared with. ``run_unit`` is
``process_study``: compress, verify, metrics, Parquet, ZIP and catalogue for every tier.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dcmtier.bench.timing import Timing, clock
from dcmtier.discovery.files import discover
from dcmtier.records import GATE_FAILED, LAYERED, OK, StudyTierResult, TierResult
from dcmtier.tiers import Tier
from dcmtier.work.batch import run_batch
from dcmtier.work.compress import CompressConfig
from dcmtier.work.config import RunConfig
from dcmtier.work.layout import Layout
from dcmtier.work.study import process_study

if TYPE_CHECKING:
    from dcmtier.catalogue import Catalogue


@dataclass
class Outcome:
    """What a run produced, beside its timing: statuses, codec time, and per-file ratios."""

    statuses: Counter[str] = field(default_factory=Counter)
    encode_s: float = 0.0  # time inside the encoder (rate-control re-encodes included)
    verify_s: float = 0.0  # write + decode again + compare
    decode_s: float = 0.0  # of which inside the decoder
    # seconds in each step outside the codec (`TierResult.steps_ms`: read, header, write,
    # verify, decode), summed over the results
    steps_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # per-file pixel ratios of every written output (a quality-gate failure has one too)
    ratios: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    j2k_rate_encode_s: float = 0.0  # encoder time of the J2K rate tiers (layered: shared)
    # (tier, source SOP Instance UID) -> (encoded bytes, mean PSNR over frames) of J2K rates
    j2k_rate_outputs: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)

    def add(self, result: TierResult) -> None:
        self.statuses[result.status] += 1
        self.encode_s += (result.encode_ms or 0.0) / 1000
        self.verify_s += (result.verify_ms or 0.0) / 1000
        self.decode_s += (result.decode_ms or 0.0) / 1000
        for step, ms in result.steps_ms.items():
            self.steps_s[step] += ms / 1000
        written = result.status in (OK, GATE_FAILED)
        if written and result.pixel_ratio is not None:
            self.ratios[result.tier].append(result.pixel_ratio)
        if result.codec == "j2k" and result.target_ratio is not None:
            self.j2k_rate_encode_s += (result.encode_ms or 0.0) / 1000
            if written and result.pixel_bytes_out and result.frame_metrics:
                psnr = [float(m["psnr_db"]) for m in result.frame_metrics]
                key = (result.tier, str(result.sop_instance_uid_in))
                self.j2k_rate_outputs[key] = (result.pixel_bytes_out, sum(psnr) / len(psnr))


@dataclass
class Run:
    timing: Timing
    outcome: Outcome
    catalogue: str | None = None


def run_compress(files: Sequence[Path], tier: Tier, out_dir: Path, *, jobs: int) -> Run:
    """Compress ``files`` into ``tier`` under ``out_dir`` with ``jobs`` processes."""
    outcome = Outcome()
    with clock() as timing:
        for file_results in run_batch(files, [tier], CompressConfig(out_dir), jobs=jobs):
            for result in file_results:
                outcome.add(result)
    return Run(timing, outcome)


def run_unit(
    study_dir: Path,
    tiers: Sequence[Tier],
    out_dir: Path,
    *,
    jobs: int,
    run_id: str,
    strategy: str = LAYERED,
) -> Run:
    """``process_study`` for every study under ``study_dir``, recording into the catalogue.

    ``strategy`` is ``layered`` (J2K rate tiers cut from one layered encode per frame, the
    default of ``dcmtier process``) or ``per_tier`` (one encode per tier).

    Discovery and creating the (empty, embedded SQLite) catalogue are not timed; recording
    each study x tier in it is, as ``dcmtier process`` does it.
    """
    studies, _ = discover([study_dir])
    outcome = Outcome()
    catalogue, note = open_catalogue(out_dir)
    run = RunConfig(Layout(out_dir), run_id, jobs=jobs, strategy=strategy, catalogue=catalogue)
    try:
        with clock() as timing:
            results: list[StudyTierResult] = []
            for study in studies:
                results += process_study(study, tiers, run)
    finally:
        if catalogue is not None:
            catalogue.close()
    for summary in results:
        for result in summary.results:
            outcome.add(result)
    return Run(timing, outcome, note)


def open_catalogue(out_dir: Path) -> tuple[Catalogue | None, str]:
    """CATALOGUE HOOK: the catalogue the timed unit of work records into, and a note saying so.

    The embedded SQLite default of ``dcmtier process`` (``OUT/catalogue.db``), migrated here,
    before the clock starts. To time against PostgreSQL instead, connect to it here.
    """
    try:
        from dcmtier.catalogue import Catalogue
        from dcmtier.catalogue.engine import default_url
    except ImportError:
        return None, "not included: dcmtier.catalogue not available"
    url = default_url(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    Catalogue.upgrade(url)
    return Catalogue.connect(url), "included: embedded SQLite (OUT/catalogue.db)"
