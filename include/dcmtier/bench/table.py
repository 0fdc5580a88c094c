"""The table ``dcmtier bench`` prints: throughput side by side, unit of work, memory, DAG,
targets. Everything it shows is in ``results.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dcmtier.bench.report import REFERENCE_TIER

if TYPE_CHECKING:
    from rich.console import Console


def print_table(results: Mapping[str, Any], console: Console) -> None:
    """The side-by-side table, the unit of work, memory, the DAG, and the targets."""
    from rich.table import Table

    machine, config = results["machine"], results["config"]
    load = machine.get("contention", {})
    busy = f"{load['other_busy_pct']} %" if load.get("measured") else "not measured"
    console.print(
        f"[bold]dcmtier bench[/bold]: {machine['nproc']} x {machine['cpu_model']} "
        f"({machine['hostname']}); {config['files']} files, gdcmconv on "
        f"{config['gdcmconv_files']}; {config['runs']} run(s); CPU used by other work "
        f"during the bench: {busy}"
    )
    jobs = config["jobs_N"]
    table = Table(
        title="MB/s of stored pixels (medians); ratios: median (min-max) of per-run ratios"
    )
    columns = ("tier", "gdcmconv", "dcmtier 1p", "per core", f"gdcmconv {jobs}x",
               f"dcmtier {jobs}p", "machine", f"vs gdcmconv {jobs}x", "encode-only",
               "codec bound")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "tier" else "right")
    for tier, ratios in results["ratios"].items():
        ref = REFERENCE_TIER.get(tier, tier)
        g = results["gdcmconv"].get(ref, {})
        d = results["dcmtier"][tier]
        table.add_row(
            tier if ref == tier else f"{tier} (vs {ref})",
            _fmt(g.get("sequential", {}).get("mb_s")),
            _fmt(d["jobs_1"]["mb_s"]),
            _fmt_ratio(ratios["per_core"]),
            _fmt(g.get("parallel", {}).get("mb_s")),
            _fmt(d["jobs_N"]["mb_s"]),
            _fmt_ratio(ratios["machine"]),
            _fmt_ratio(ratios["machine_vs_parallel_gdcmconv"]),
            _fmt_ratio(ratios["encode_only_per_core"]),
            _fmt_ratio(ratios.get("codec_bound_per_core", {})),
        )
    console.print(table)
    _print_steps(results, console)
    _print_jpegxl(results, console)
    _print_unit(results, console)
    _print_targets(results, console)


STEP_COLUMNS = ("read", "header", "encode", "write", "verify", "decode", "other",
                "outside_codec")  # fmt: skip


def _print_steps(results: Mapping[str, Any], console: Console) -> None:
    """Milliseconds per file of each step with one process (medians over the runs)."""
    from rich.table import Table

    table = Table(title="dcmtier, 1 process: ms per file of each step (medians)")
    for column in ("tier", *STEP_COLUMNS):
        table.add_column(column.replace("_", " "), justify="left" if column == "tier" else "right")
    for tier, figures in results["dcmtier"].items():
        steps = figures.get("jobs_1", {}).get("steps_ms_per_file")
        if steps:
            table.add_row(tier, *(_fmt(steps.get(step), 2) for step in STEP_COLUMNS))
    console.print(table)


def _print_jpegxl(results: Mapping[str, Any], console: Console) -> None:
    """JPEG XL lossless beside J2K lossless: ratio, size against J2K, encoder MB/s."""
    for name, section in results.get("jpegxl_lossless", {}).items():
        cells = ", ".join(
            f"{codec} {row['ratio']:.2f}:1 ({row['bytes_vs_j2k']:.3f}x, {row['encode_mb_s']} MB/s)"
            for codec, row in section["codecs"].items()
        )
        console.print(f"Lossless, {name} ({section['frames']} frames, encoder only): {cells}")


def _print_unit(results: Mapping[str, Any], console: Console) -> None:
    unit, config = results["unit_of_work"], results["config"]
    for strategy in config["unit_strategies"]:
        figures = unit[strategy]
        one = f"1 proc {_fmt(figures['jobs_1']['wall_s'])} s, " if "jobs_1" in figures else ""
        console.print(
            f"Unit of work ({strategy}), {len(config['unit_tiers'])} tiers, "
            f"{config['unit_of_work_files']} files: {one}{config['jobs_N']} proc "
            f"{_fmt(figures['jobs_N']['wall_s'])} s, gdcmconv chain (estimated) "
            f"{_fmt(unit['gdcmconv_13_tier_estimate_s'])} s: ratio "
            f"{_fmt_ratio(figures['ratio_jobs_N_to_gdcmconv'])}"
        )
    console.print(f"Catalogue {unit['catalogue']}")
    _print_layers(results, console)
    for slices, entry in results["rss"].items():
        console.print(
            f"Peak RSS, {slices} slices x {results['config']['rss_tier']}: "
            f"{_fmt(entry['peak_rss_mb'])} MB (bound {entry['bound_mb']} MB)"
        )
    dag = results["dag_overhead"]
    if not dag.get("measured"):
        console.print(f"DAG overhead: {dag['reason']}")
        return
    console.print(
        f"DAG run ({dag['slices']} slices x {len(results['config']['unit_tiers'])} tiers, "
        f"dag.test): {_fmt(dag['dag_wall_s'])} s, the same work directly "
        f"{_fmt(dag['direct_wall_s'])} s; Airflow outside the tasks "
        f"{_fmt_ratio(dag['overhead_share_outside_tasks'])}, all the DAG adds "
        f"{_fmt_ratio(dag['overhead_share_vs_direct'])} of the wall time"
    )
    if "overhead_share_vs_direct_cpu" in dag:
        console.print(
            f"  in CPU time: {_fmt(dag['dag_cpu_s'])} s against {_fmt(dag['direct_cpu_s'])} s "
            f"directly; all the DAG adds {_fmt_ratio(dag['overhead_share_vs_direct_cpu'])}"
        )


def _print_layers(results: Mapping[str, Any], console: Console) -> None:
    from rich.table import Table

    section = results.get("layered_vs_per_tier", {})
    if not section.get("measured"):
        console.print(f"Layered vs per tier: {section.get('reason', 'not measured')}")
        return
    cpu = section["j2k_rate_encode_s"]
    console.print(
        f"J2K encoder time of the 12 rate tiers (unit of work, all cores): per_tier "
        f"{_fmt(cpu['per_tier'])} s, layered {_fmt(cpu['layered'])} s: per_tier / layered "
        f"{_fmt_ratio(section['cpu_factor_per_tier_over_layered'])}"
    )
    table = Table(title="Layered cuts vs per-tier encodes, per J2K rate tier (first run)")
    for column in ("tier", "instances", "bytes vs per_tier", "per instance", "mean PSNR diff",
                   "per instance (dB)"):  # fmt: skip
        table.add_column(column)
    ordered = sorted(section["tiers"].items(), key=lambda kv: -float(kv[1]["target_ratio"]))
    for tier, entry in ordered:
        size, psnr = entry["size_instance_pct"], entry["psnr_diff_db"]
        table.add_row(
            tier,
            str(entry["instances"]),
            _signed(entry["size_total_pct"], " %"),
            f"{_signed(size['min'], '')} .. {_signed(size['max'], ' %')}",
            _signed(entry["mean_psnr_diff_db"], " dB"),
            f"{_signed(psnr['min'], '')} .. {_signed(psnr['max'], '')}",
        )
    console.print(table)


def _signed(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:+.2f}{unit}"


def _print_targets(results: Mapping[str, Any], console: Console) -> None:
    from rich.table import Table

    table = Table(title="Targets (issues #6, #7 and #17), judged on the median")
    for column in ("target", "measured", "limit", "met", "codec bound"):
        table.add_column(column)
    for row in results["targets"]:
        sign = "<=" if row["at_most"] else ">="
        value = "-" if row["value"] is None else f"{row['value']:.2f}"
        bound = "" if row.get("bound") is None else f"{row['bound']:.2f}"
        table.add_row(
            row["target"], value, f"{sign} {row['limit']:g}", "yes" if row["met"] else "NO", bound
        )
    console.print(table)
    console.print(
        "codec bound: the ratio with only the encoder's and the verifying decoder's own time "
        "counted (machine: times the processes); a target above it cannot be met by any "
        "wrapper of these codec libraries that verifies what it writes"
    )


def _fmt(stats: Mapping[str, Any] | None, digits: int = 1) -> str:
    if not stats or stats.get("median") is None:
        return "-"
    return f"{stats['median']:.{digits}f}"


def _fmt_ratio(stats: Mapping[str, Any]) -> str:
    """``median (min-max)``."""
    if stats.get("median") is None:
        return "-"
    return f"{stats['median']:.2f} ({stats['min']:.2f}-{stats['max']:.2f})"
