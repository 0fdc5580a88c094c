"""Turn the bench's per-run measurements into ``results.json`` and the printed table.

Ratios are taken run by run (dcmtier and gdcmconv measured within minutes of each other on the
same files), then summarised as min / median / max; a target is judged on the median.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dcmtier.bench import layers
from dcmtier.bench.timing import spread, summary, target_row
from dcmtier.codec.backends.ratecontrol import TOLERANCE
from dcmtier.tiers import DEFAULT_TIERS, TIERS, get_tier

if TYPE_CHECKING:
    from dcmtier.bench.timing import Figures

FORMAT = "dcmtier-bench/1"
J2K_PER_CORE, J2K_MACHINE, HTJ2K_PER_CORE, UNIT_SHARE = 2.0, 3.5, 10.0, 0.5
RSS_SLACK_MB = 300.0
OUTSIDE_CODEC_MS = 2.0  # issue #17: time per 512x512 file outside the encoder and decoder
# The gdcmconv figure each dcmtier tier is compared with (gdcmconv makes J2K only).
REFERENCE_TIER = {
    "htj2k-lossless": "j2k-lossless",
    "htj2k-r20": "j2k-r20",
    "jxl-lossless": "j2k-lossless",
}
UNITS = {
    "mb_s": "MB/s of stored pixel bytes (Rows x Columns x Samples x BitsAllocated/8), MB = 1e6",
    "mb_per_cpu_s": "MB of stored pixels per CPU second (user + system, children included)",
    "encode_only_mb_s": "MB/s counting only the time inside the encoder",
    "codec_only_mb_s": "MB/s counting only the time inside the encoder and the verifying decoder",
    "per_core": "dcmtier with 1 process / the gdcmconv chain run sequentially (1 at a time)",
    "machine": "dcmtier with --jobs N / the gdcmconv chain run sequentially",
    "machine_vs_parallel_gdcmconv": "dcmtier with --jobs N / N gdcmconv loops at once",
    "per_cpu_second": "dcmtier MB per CPU second / gdcmconv MB per CPU second",
    "encode_only_per_core": "dcmtier encoder time alone / the gdcmconv chain: the most any "
    "wrapper of this encoder could reach without verifying (nothing else taking time)",
    "codec_bound_per_core": "dcmtier encoder + verifying decoder time alone / the gdcmconv "
    "chain: the most any wrapper of these codec libraries could reach with verify-after-write",
    "rss": "peak resident set size of the child process, MB = 1e6 bytes",
    "steps_ms_per_file": "ms per file of each step, 1 process (read, header, encode, write, "
    "verify, decode; outside_codec = wall time less encoder and decoder; other = what no "
    "step names)",
}


def assemble(
    *,
    figures: Figures,
    rss: list[dict[str, Any]],
    gdcm_ratios: Mapping[str, list[float]],
    context: dict[str, Any],
    dag: dict[str, Any],
) -> dict[str, Any]:
    """The whole ``results.json`` document."""
    nested = _nest(figures.values)
    config = context["config"]
    results: dict[str, Any] = {
        "format": FORMAT,
        **context,
        "units": UNITS,
        "gdcmconv": nested.get("gdcmconv", {}),
        "dcmtier": nested.get("dcmtier", {}),
        "ratios": _ratios(figures.values),
        "unit_of_work": _unit(nested.get("unit", {}), _unit_estimate(figures.values, config)),
        "rate_accuracy": {
            source: _accuracy(ratios, gdcm_ratios if source == "compress" else {})
            for source, ratios in figures.ratios.items()
        },
        "layered_vs_per_tier": layers.compare(figures.values, figures.j2k_rate_outputs),
        "rss": _rss(rss),
        "dag_overhead": _dag(dag),
        "notes": _notes(config),
    }
    results["unit_of_work"]["catalogue"] = figures.notes.get("catalogue")
    results["targets"] = targets(results)
    return results


def _nest(values: Mapping[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, runs in sorted(values.items()):
        *parents, leaf = path.split("/")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = summary(runs)
    return out


def _in_table_order(names: Iterable[str]) -> list[str]:
    """Tier names in the order of the tier table (lossless first, then by rate)."""
    order = list(TIERS)
    return sorted(names, key=order.index)


def _paired(top: Sequence[float], bottom: Sequence[float]) -> list[float]:
    return [a / b for a, b in zip(top, bottom, strict=False) if b]


def _ratios(values: Mapping[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tiers = {path.split("/")[1] for path in values if path.startswith("dcmtier/")}
    for tier in _in_table_order(tiers):
        ref = f"gdcmconv/{REFERENCE_TIER.get(tier, tier)}"
        ours = f"dcmtier/{tier}"
        pairs = {
            "per_core": (f"{ours}/jobs_1/mb_s", f"{ref}/sequential/mb_s"),
            "machine": (f"{ours}/jobs_N/mb_s", f"{ref}/sequential/mb_s"),
            "machine_vs_parallel_gdcmconv": (f"{ours}/jobs_N/mb_s", f"{ref}/parallel/mb_s"),
            "per_cpu_second": (f"{ours}/jobs_1/mb_per_cpu_s", f"{ref}/sequential/mb_per_cpu_s"),
            "encode_only_per_core": (f"{ours}/jobs_1/encode_only_mb_s", f"{ref}/sequential/mb_s"),
            "codec_bound_per_core": (f"{ours}/jobs_1/codec_only_mb_s", f"{ref}/sequential/mb_s"),
        }
        out[tier] = {
            "compared_with": f"gdcmconv {REFERENCE_TIER.get(tier, tier)}",
            **{
                name: summary(_paired(values.get(a, []), values.get(b, [])))
                for name, (a, b) in pairs.items()
            },
        }
    return out


def _unit_estimate(values: Mapping[str, list[float]], config: Mapping[str, Any]) -> dict[str, Any]:
    """The gdcmconv chain's time for the 13 default tiers, from its per-tier measurements."""
    files_timed = config["gdcmconv_files"]
    per_file = {
        tier: [w / files_timed for w in values.get(f"gdcmconv/{tier}/sequential/wall_s", [])]
        for tier in ("j2k-lossless", "j2k-r20", "j2k-r100")
    }
    lossy = [
        statistics.mean(pair)
        for pair in zip(per_file["j2k-r20"], per_file["j2k-r100"], strict=False)
    ]
    rates = len(DEFAULT_TIERS) - 1
    files = config["unit_of_work_files"]
    estimate = [
        files * (lossless + rates * r)
        for lossless, r in zip(per_file["j2k-lossless"], lossy, strict=False)
    ]
    return {
        "gdcmconv_13_tier_estimate_s": summary(estimate),
        "gdcmconv_13_tier_method": (
            f"estimated, not measured: per run, {files} files x (gdcmconv j2k-lossless seconds "
            f"per file + {rates} x the mean of its j2k-r20 and j2k-r100 seconds per file), "
            "measured sequentially on the same files in the same run; gdcmconv's time per "
            "file barely depends on the rate"
        ),
        **{
            f"ratio_to_gdcmconv/{strategy}/{label}": summary(
                _paired(values.get(f"unit/{strategy}/{label}/wall_s", []), estimate)
            )
            for strategy in config["unit_strategies"]
            for label in ("jobs_1", "jobs_N")
            if f"unit/{strategy}/{label}/wall_s" in values
        },
    }


def _unit(nested: dict[str, Any], estimate: dict[str, Any]) -> dict[str, Any]:
    """Per strategy: its timings and its ratios to the gdcmconv chain; the estimate once."""
    out: dict[str, Any] = {k: v for k, v in estimate.items() if not k.startswith("ratio_")}
    for key, value in estimate.items():
        if key.startswith("ratio_to_gdcmconv/"):
            _, strategy, label = key.split("/")
            nested.setdefault(strategy, {})[f"ratio_{label}_to_gdcmconv"] = value
    return {**out, **nested}


def _accuracy(
    ratios: Mapping[str, list[float]], gdcm_ratios: Mapping[str, list[float]]
) -> dict[str, Any]:
    out = {}
    for tier in _in_table_order(ratios):
        values = ratios[tier]
        target = get_tier(tier).target_ratio
        entry: dict[str, Any] = {"target": target, "files": len(values), **spread(values)}
        if target is not None:
            deviations: list[float] = [100 * (v / target - 1) for v in values]
            worst: float | None = max(deviations, key=abs) if deviations else None
            entry["worst_deviation_pct"] = None if worst is None else round(worst, 2)
            entry["files_outside_tolerance"] = sum(abs(d) > 100 * TOLERANCE for d in deviations)
            entry["within_tolerance"] = bool(values) and entry["files_outside_tolerance"] == 0
        if tier in gdcm_ratios:
            entry["gdcmconv"] = {"files": len(gdcm_ratios[tier]), **spread(gdcm_ratios[tier])}
        out[tier] = entry
    return out


def _rss(reports: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for report in reports:
        peaks = [run["peak_rss_mb"] for run in report["runs"]]
        bound = 2 * report["largest_instance_bytes"] / 1e6 + RSS_SLACK_MB
        out[str(report["slices"])] = {
            **report,
            "peak_rss_mb": summary(peaks),
            "bound_mb": round(bound, 1),
            "within_bound": max(peaks) <= bound,
        }
    return out


def _dag_cpu(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The same shares in CPU time (steadier than wall time on a machine shared with other
    work); absent from results made before the bench measured it."""
    if not all("cpu_s" in r and "direct_cpu_s" in r for r in runs):
        return {}
    cpus, direct = [r["cpu_s"] for r in runs], [r["direct_cpu_s"] for r in runs]
    return {
        "dag_cpu_s": summary(cpus),
        "direct_cpu_s": summary(direct),
        "overhead_share_vs_direct_cpu": summary(
            [(c - d) / c for c, d in zip(cpus, direct, strict=True)]
        ),
    }


def _dag(dag: dict[str, Any]) -> dict[str, Any]:
    if not dag.get("measured"):
        return dag
    runs = dag["runs"]
    walls = [r["wall_s"] for r in runs]
    direct = [r["direct_wall_s"] for r in runs]
    return {
        **dag,
        "dag_wall_s": summary(walls),
        "direct_wall_s": summary(direct),
        "overhead_share_outside_tasks": summary([r["overhead_share"] for r in runs]),
        "overhead_share_vs_direct": summary(
            [(w - d) / w for w, d in zip(walls, direct, strict=True)]
        ),
        **_dag_cpu(runs),
        "method": (
            "dag.test() of dicom_archive_compression (a manual run, one process, tasks in "
            "sequence) on a generated study, default strategy; 'outside_tasks' = 1 - sum of "
            "task-instance durations / run wall time (Airflow around the tasks); 'vs_direct' = "
            "1 - the same work run directly (process_study, same tiers and strategy, 1 process, "
            "embedded catalogue; discovery not included) / run wall time (everything the DAG "
            "adds: Airflow in and around the tasks, the discover task, one task per study x "
            "tier instead of one call per study). A "
            "deployed scheduler's latency and an executor's process start per task are not "
            "included: both are lower bounds."
        ),
    }


def _notes(config: Mapping[str, Any]) -> list[str]:
    notes = [
        "The gdcmconv chain is one gdcmconv process per file, from a shell loop; 'parallel' "
        f"runs {config['jobs_N']} such loops at once over shares of the files.",
        "dcmtier's throughput is 'dcmtier compress': read, encode, write, decode again and "
        "compare (verification included); gdcmconv does not verify.",
        "The unit of work is process_study: compress, verify, metrics, Parquet, ZIP and the "
        "catalogue (embedded SQLite), for each strategy in config.unit_strategies (layered: "
        "J2K rate tiers cut from one layered encode, issue #7; per_tier: one encode per tier).",
        "Other work may have shared the CPU; see machine.contention.",
    ]
    if config["runs"] < 3:
        notes.append(f"only {config['runs']} run(s): min/median/max need at least 3")
    if config["gdcmconv_files"] != config["files"]:
        notes.append(f"gdcmconv ran on {config['gdcmconv_files']} of the {config['files']} files")
    return notes


def _median(results: Mapping[str, Any], *path: str) -> float | None:
    node: Any = results
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    value = node.get("median") if isinstance(node, Mapping) else None
    return float(value) if value is not None else None


# A throughput target's measured ratio, and the most the codec libraries allow (its bound).
_PER_CORE = ("per_core", "codec_bound_per_core")


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target of issues #6 and #7 with the measured value and whether it was met."""
    rows: list[dict[str, Any]] = []

    def check(
        name: str,
        value: float | None,
        limit: float,
        *,
        at_most: bool = False,
        bound: float | None = None,
    ) -> None:
        rows.append(target_row(name, value, limit, at_most=at_most, bound=bound))

    jobs = results["config"]["jobs_N"]
    for tier in ("j2k-lossless", "j2k-r20", "j2k-r100"):
        per_core, bound = (_median(results, "ratios", tier, k) for k in _PER_CORE)
        check(f"{tier} per core vs gdcmconv", per_core, J2K_PER_CORE, bound=bound)
        machine = _median(results, "ratios", tier, "machine")
        check(
            f"{tier} machine vs gdcmconv",
            machine,
            J2K_MACHINE,
            bound=None if bound is None else round(bound * jobs, 5),
        )
    for tier in ("htj2k-lossless", "htj2k-r20"):
        ref = REFERENCE_TIER[tier]
        per_core, bound = (_median(results, "ratios", tier, k) for k in _PER_CORE)
        check(f"{tier} per core vs gdcmconv {ref}", per_core, HTJ2K_PER_CORE, bound=bound)
    size = results["config"].get("size")
    for tier in results.get("dcmtier", {}):
        outside = _median(results, "dcmtier", tier, "jobs_1", "steps_ms_per_file", "outside_codec")
        if outside is not None and size:
            check(f"{tier} ms per {size}x{size} file outside the codec", outside,
                  OUTSIDE_CODEC_MS, at_most=True)  # fmt: skip
    for strategy in results["config"]["unit_strategies"]:
        unit = _median(results, "unit_of_work", strategy, "ratio_jobs_N_to_gdcmconv")
        name = f"unit of work ({strategy}), 13 tiers, all cores / gdcmconv 13 tiers"
        check(name, unit, UNIT_SHARE, at_most=True)
    rows += layers.targets(results.get("layered_vs_per_tier", {}))
    for slices, entry in results["rss"].items():
        peak = entry["peak_rss_mb"]["max"]
        check(f"peak RSS at {slices} slices (MB)", peak, entry["bound_mb"], at_most=True)
    for source, tiers in results["rate_accuracy"].items():
        for tier, entry in tiers.items():
            if entry["target"] is None:
                continue
            tolerance = f"+-{100 * TOLERANCE:g} % of {entry['target']:g}"
            name = f"{tier} ({source}) every file within {tolerance}"
            rows.append(
                target_row(
                    name,
                    entry["worst_deviation_pct"],
                    100 * TOLERANCE,
                    at_most=True,
                    met=entry["within_tolerance"],
                )
            )
    return rows
