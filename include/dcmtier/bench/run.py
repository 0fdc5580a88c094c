"""``dcmtier bench``: dcmtier against the gdcmconv-per-file chain, on the same files, same run.

Each run measures, alternately and in this order, for j2k-lossless, j2k-r20 and j2k-r100: the
gdcmconv chain (one process per file, sequentially, then as many loops as cores), dcmtier's
``compress`` with one process, then with all cores; then dcmtier alone for htj2k-lossless,
htj2k-r20 and jxl-lossless; then the unit of work (``process_study``) for the 13 default tiers
with one process and with all cores. Every figure is kept per run and summarised as min /
median / max; a ratio is taken within a run (dcmtier and gdcmconv measured minutes apart),
then summarised. Peak RSS
of one study x tier is measured at two slice counts in a child process; JPEG XL lossless is
compared with J2K lossless per effort on the study and on real scans (``bench.jpegxl``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmtier.bench import gdcmconv as gdcm
from dcmtier.bench.dag import dag_runs
from dcmtier.bench.ours import Run, run_compress, run_unit
from dcmtier.bench.report import assemble
from dcmtier.bench.rss import peak_rss
from dcmtier.bench.timing import (
    MB,
    Figures,
    contention,
    cpu_counters,
    cpu_seconds,
    machine_info,
)
from dcmtier.errors import ConfigError
from dcmtier.tiers import DEFAULT_TIERS, get_tier, resolve_tiers
from dcmtier.versions import software_versions

GDCM_TIERS = ("j2k-lossless", "j2k-r20", "j2k-r100")
OURS_ONLY_TIERS = ("htj2k-lossless", "htj2k-r20", "jxl-lossless")
DAG_FILE = Path("dags/dicom_archive_compression.py")
VARIANTS = {"signed": True, "unsigned": False}


@dataclass(frozen=True)
class BenchConfig:
    """What to measure; read once from the command line."""

    slices: int = 400
    size: int = 512
    runs: int = 3
    jobs: int = 1  # processes for the whole-machine figures
    gdcm_files: int = 0  # 0: every file; else the first N of each variant
    rss_slices: tuple[int, ...] = (100, 800)
    rss_size: int = 512
    rss_tier: str = "j2k-lossless"
    dag_slices: int = 40  # 0: do not measure the DAG run
    strategies: tuple[str, ...] = ("layered", "per_tier")  # of the unit of work; first: default
    data: Path | None = None  # take this study instead of generating one
    work: Path | None = None  # scratch folder (default: a temporary one, removed)
    out: Path = Path("bench/results.json")
    gdcmconv: str | None = None
    install: bool = False  # apt-get libgdcm-tools when gdcmconv is missing (--install-tools)


@dataclass(frozen=True)
class Data:
    files: tuple[Path, ...]  # dcmtier's throughput files (every variant)
    gdcm_files: tuple[Path, ...]  # the same files, or the first N of each variant
    unit_dir: Path  # the study the unit of work runs on
    variants: dict[str, int]
    pixel_bytes: dict[Path, int]
    generated: bool


def run_bench(config: BenchConfig, *, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything, write ``config.out`` and return the results."""
    if config.runs < 1:
        raise ConfigError("--runs must be at least 1")
    gdcmconv = gdcm.ensure_gdcmconv(config.gdcmconv, install=config.install)
    machine, commit = machine_info(), _commit()  # the commit before the runs: what is timed
    counters, cpu_start = cpu_counters(), cpu_seconds()
    work = config.work or Path(tempfile.mkdtemp(prefix="dcmtier-bench-"))
    try:
        data = _prepare(config, work / "data", echo)
        figures = Figures()
        for run in range(config.runs):
            echo(f"run {run + 1} of {config.runs}")
            _one_run(
                config,
                data,
                gdcmconv=gdcmconv,
                scratch=work / "scratch",
                figures=figures,
                echo=echo,
            )
        gdcm_ratios = _gdcmconv_ratios(config, data, gdcmconv, work / "scratch")
        echo("JPEG XL lossless beside J2K lossless (codec only)")
        jpegxl_lossless = _jpegxl_lossless(config, data)
        rss = peak_rss(
            work / "rss", config.rss_slices, size=config.rss_size, tier=config.rss_tier,
            runs=config.runs, echo=echo,
        )  # fmt: skip
        dag = (
            dag_runs(work / "dag", DAG_FILE, slices=config.dag_slices, size=config.size,
                     runs=config.runs, echo=echo)
            if config.dag_slices
            else {"measured": False, "reason": "not measured: --dag-slices 0"}
        )  # fmt: skip
    finally:
        if config.work is None:
            shutil.rmtree(work, ignore_errors=True)
    load = contention(counters, cpu_counters(), cpu_seconds() - cpu_start)
    results = assemble(
        figures=figures,
        rss=rss,
        gdcm_ratios=gdcm_ratios,
        context=_context(config, data, gdcmconv, machine | {"contention": load}, commit),
        dag=dag,
    )
    results["jpegxl_lossless"] = jpegxl_lossless
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def _one_run(
    config: BenchConfig,
    data: Data,
    *,
    gdcmconv: str,
    scratch: Path,
    figures: Figures,
    echo: Callable[[str], None],
) -> None:
    """One run of every timed figure, gdcmconv and dcmtier alternating tier by tier."""
    for name in GDCM_TIERS + OURS_ONLY_TIERS:
        if name in GDCM_TIERS:
            _time_chain(
                config, data, name, gdcmconv=gdcmconv, scratch=scratch, figures=figures, echo=echo
            )
        ours_bytes = sum(data.pixel_bytes[f] for f in data.files)
        for label, count in (("jobs_1", 1), ("jobs_N", config.jobs)):
            echo(f"  dcmtier  {label:<10} {name}")
            run = run_compress(data.files, get_tier(name), _fresh(scratch), jobs=count)
            _record(figures, f"dcmtier/{name}/{label}", run, ours_bytes)
    unit_bytes = sum(b for f, b in data.pixel_bytes.items() if data.unit_dir in f.parents)
    for index, strategy in enumerate(config.strategies):
        # --jobs 1 for the default (first) strategy; all cores for each strategy
        counts = (
            (("jobs_1", 1), ("jobs_N", config.jobs)) if index == 0 else (("jobs_N", config.jobs),)
        )
        for label, count in counts:
            echo(f"  unit of work, {len(DEFAULT_TIERS)} tiers, {strategy}, {label}")
            run = run_unit(
                data.unit_dir, resolve_tiers(None), _fresh(scratch), jobs=count,
                run_id="bench", strategy=strategy,
            )  # fmt: skip
            _record(figures, f"unit/{strategy}/{label}", run, unit_bytes)
            figures.values[f"unit/{strategy}/{label}/j2k_rate_encode_s"].append(
                run.outcome.j2k_rate_encode_s
            )
            if label == "jobs_N":
                figures.j2k_rate_outputs.setdefault(strategy, run.outcome.j2k_rate_outputs)
            figures.notes["catalogue"] = str(run.catalogue)
            figures.first_ratios(strategy, run.outcome.ratios)
    shutil.rmtree(scratch, ignore_errors=True)


def _time_chain(
    config: BenchConfig,
    data: Data,
    name: str,
    *,
    gdcmconv: str,
    scratch: Path,
    figures: Figures,
    echo: Callable[[str], None],
) -> None:
    """The gdcmconv chain for tier ``name``: one loop, then as many loops as cores."""
    stored = sum(data.pixel_bytes[f] for f in data.gdcm_files)
    for label, parallel in (("sequential", 1), ("parallel", config.jobs)):
        echo(f"  gdcmconv {label:<10} {name}")
        chain = gdcm.run_chain(
            gdcmconv, data.gdcm_files, get_tier(name), _fresh(scratch), parallel=parallel
        )
        figures.timing(f"gdcmconv/{name}/{label}", chain.timing, stored)
        figures.values[f"gdcmconv/{name}/{label}/failures"].append(chain.failures)


def _record(figures: Figures, path: str, run: Run, stored_bytes: int) -> None:
    figures.timing(path, run.timing, stored_bytes)
    outcome = run.outcome
    figures.values[f"{path}/encode_s"].append(outcome.encode_s)
    figures.values[f"{path}/verify_s"].append(outcome.verify_s)
    figures.values[f"{path}/decode_s"].append(outcome.decode_s)
    figures.values[f"{path}/encode_only_mb_s"].append(stored_bytes / MB / outcome.encode_s)
    codec_s = outcome.encode_s + outcome.decode_s
    figures.values[f"{path}/codec_only_mb_s"].append(stored_bytes / MB / codec_s)
    figures.values[f"{path}/not_ok"].append(sum(outcome.statuses.values()) - outcome.statuses["ok"])
    if path.startswith("dcmtier/") and path.endswith("/jobs_1"):
        _record_steps(figures, path, run)
    if path.startswith("dcmtier/"):
        figures.first_ratios("compress", outcome.ratios)


STEPS = ("read", "header", "write", "verify", "decode")


def _record_steps(figures: Figures, path: str, run: Run) -> None:
    """Milliseconds per file of each step, with one process: the codec's (encode, decode),
    each step around it, ``outside_codec`` (the wall time less the encoder's and decoder's)
    and ``other`` (what no step names: results, policy checks, the batch loop)."""
    outcome = run.outcome
    files = sum(outcome.statuses.values())
    if not files:
        return
    per_file = {step: 1000 * outcome.steps_s.get(step, 0.0) / files for step in STEPS}
    per_file["encode"] = 1000 * outcome.encode_s / files
    outside = 1000 * (run.timing.wall_s - outcome.encode_s - outcome.decode_s) / files
    named = sum(v for k, v in per_file.items() if k not in ("encode", "decode"))
    per_file["outside_codec"] = outside
    per_file["other"] = outside - named
    for step, ms in per_file.items():
        figures.values[f"{path}/steps_ms_per_file/{step}"].append(ms)


def _jpegxl_lossless(config: BenchConfig, data: Data) -> dict[str, Any]:
    """``bench.jpegxl.compare`` on the study's first files per variant and on real scans."""
    from dcmtier.bench import jpegxl

    study = [f for f in data.gdcm_files if f in data.files]
    per_variant = jpegxl.BENCH_FILES
    firsts: list[Path] = []
    for name in data.variants:
        firsts += [f for f in study if name in f.parts or name == "given"][:per_variant]
    sets = {"study": firsts or list(data.files[:per_variant]), "real": jpegxl.real_files()}
    return {
        name: jpegxl.compare(files, runs=config.runs, efforts=jpegxl.BENCH_EFFORTS)
        for name, files in sets.items()
        if files
    }


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def _prepare(config: BenchConfig, folder: Path, echo: Callable[[str], None]) -> Data:
    """The study to measure: ``config.data``, or a generated signed and unsigned CT study."""
    from dcmtier.discovery.files import find_files
    from dcmtier.sample import write_ct_series

    if config.data is not None:
        files = find_files([config.data])
        variants = {"given": files}
        unit_dir = config.data
    else:
        echo(f"generating {config.slices} slices of {config.size}x{config.size}, signed, unsigned")
        variants = {
            name: write_ct_series(
                folder / name, slices=config.slices, rows=config.size, columns=config.size,
                signed=signed,
            )
            for name, signed in VARIANTS.items()
        }  # fmt: skip
        files = [f for paths in variants.values() for f in paths]
        unit_dir = folder / "signed"
    if not files:
        raise ConfigError(f"no files under {config.data}")
    limit = config.gdcm_files or None
    gdcm_files = [f for paths in variants.values() for f in paths[:limit]]
    return Data(
        files=tuple(files),
        gdcm_files=tuple(gdcm_files),
        unit_dir=unit_dir,
        variants={name: len(paths) for name, paths in variants.items()},
        pixel_bytes={f: _stored_bytes(f) for f in files},
        generated=config.data is None,
    )


def _stored_bytes(path: Path) -> int:
    """Uncompressed stored pixel bytes (Rows x Columns x Samples x Frames x BitsAllocated / 8)."""
    from pydicom import dcmread

    ds = dcmread(path, stop_before_pixels=True)
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.Rows) * int(ds.Columns) * samples * frames * int(ds.BitsAllocated)
    return (bits + 7) // 8


def _gdcmconv_ratios(
    config: BenchConfig, data: Data, gdcmconv: str, scratch: Path
) -> dict[str, list[float]]:
    """Pixel ratios gdcmconv achieves for the rate tiers (one untimed pass)."""
    out: dict[str, list[float]] = {}
    for name in GDCM_TIERS:
        tier = get_tier(name)
        chain = gdcm.run_chain(gdcmconv, data.gdcm_files, tier, _fresh(scratch))
        sizes = [gdcm.encoded_pixel_bytes(path) for path in chain.outputs]
        out[name] = [
            data.pixel_bytes[src] / size
            for src, size in zip(data.gdcm_files, sizes, strict=True)
            if size
        ]
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def _context(
    config: BenchConfig, data: Data, gdcmconv: str, machine: dict[str, Any], commit: str
) -> dict[str, Any]:
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine,
        "versions": {
            **software_versions(),
            "gdcmconv": gdcm.gdcmconv_version(gdcmconv),
            "dcmtier_commit": commit,
        },
        "config": {
            "slices": config.slices if data.generated else None,
            "size": config.size if data.generated else None,
            "data": str(config.data) if config.data else "generated (dcmtier.sample)",
            "variants": data.variants,
            "files": len(data.files),
            "gdcmconv_files": len(data.gdcm_files),
            "unit_of_work_files": sum(1 for f in data.files if data.unit_dir in f.parents),
            "runs": config.runs,
            "jobs_N": config.jobs,
            "gdcm_tiers": list(GDCM_TIERS),
            "ours_only_tiers": list(OURS_ONLY_TIERS),
            "unit_tiers": list(DEFAULT_TIERS),
            "unit_strategies": list(config.strategies),
            "rss_slices": list(config.rss_slices),
            "rss_size": config.rss_size,
            "rss_tier": config.rss_tier,
            "gdcmconv": gdcmconv,
        },
    }


def _commit() -> str:
    """The git commit of the code measured, ``+dirty`` when tracked files differ from it."""
    package = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=package, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=package, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head
