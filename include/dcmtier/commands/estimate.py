"""``dcmtier estimate``: forecast a backfill's savings, time and Airflow cost from a sample.

Brings the landing index of LANDING up to date (`dcmtier discover`), takes the archive's
inventory from it (studies by modality, size class and StudyDate), draws a stratified random
sample of studies (by modality x size class, seeded: the same index and seed give the same
sample), compresses them into the tiers in a scratch folder (nothing published, nothing
recorded as an attempt), and projects over the whole landing area, per tier, per tier x
modality and in total: stored bytes with a 95 % interval (separate ratio estimator per
stratum on the source bytes), encode CPU hours, the wall time of `dcmtier process --jobs K`
and of the DAG on K worker slots (with its per-task-instance orchestration cost), and the task
instances and Airflow metadata the backfill would add. The estimate is kept in the catalogue
(table `estimates`); `--check` compares the last one with what the catalogue now holds (view
`estimate_vs_actual`). See docs/operators/estimate.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dcmtier.commands.options import add_catalogue_arguments, positive
from dcmtier.discovery.sampling import Projection

EPILOG = (
    "--json: JSON Lines, one object per tier (scope tier: tier, studies, source_bytes, "
    "stored_bytes, stored_bytes_low, stored_bytes_high, saved_bytes, cpu_hours), per tier x "
    "modality (scope modality, the same and modality) and one total (scope total: wall_s, "
    "wall_s_dag, task_instances, metadata_bytes, sample_studies, runs, units, estimate_id); "
    "with --check one per tier (scope check). Exit status: 0 done, 1 the catalogue is "
    "unreachable or holds no estimate (--check), 2 bad usage or an empty landing area."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("landing", metavar="LANDING", nargs="?", help="a folder or an fsspec URL")
    add_catalogue_arguments(parser)
    parser.add_argument(
        "--tier", action="append", dest="tiers", metavar="NAME",
        help="tier, repeatable (default: the default tiers)",
    )  # fmt: skip
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--sample", type=positive, metavar="N", help="studies to sample")
    size.add_argument(
        "--sample-fraction", type=_fraction, metavar="F",
        help="share of the studies to sample (default 0.1)",
    )  # fmt: skip
    parser.add_argument(
        "--slots", type=positive, default=1, metavar="K",
        help="worker slots: dcmtier process --jobs K, or the DAG's pool (default 1)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="sample seed (0)")
    parser.add_argument(
        "--check", action="store_true",
        help="compare the last estimate with the stored bytes the catalogue now holds",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="JSON Lines (see below)")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1: {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from dcmtier.commands.options import open_catalogue
    from dcmtier.errors import ConfigError

    if not args.check and not args.landing:
        raise ConfigError("estimate needs LANDING (or --check)")
    catalogue = open_catalogue(args.catalogue, args.out)
    try:
        return _check(catalogue, args) if args.check else _estimate(catalogue, args)
    finally:
        catalogue.close()


def _check(catalogue: Any, args: argparse.Namespace) -> int:
    from dcmtier.catalogue.estimates import versus_actual
    from dcmtier.cli import EXIT_FAILED, EXIT_OK, print_json

    with catalogue.engine.connect() as connection:
        rows = versus_actual(connection)
    if not rows:
        print("dcmtier: the catalogue holds no estimate", file=sys.stderr)
        return EXIT_FAILED
    for row in rows:
        line = {"scope": "check", **row}
        if args.json:
            print_json(line)
            continue
        error = row["error"]
        where = "inside" if row["inside"] else "outside"
        verdict = "nothing stored yet" if error is None else f"{error:+.1%}, {where} the interval"
        print(
            f"{row['tier']}: forecast {_mb(row['stored_bytes_forecast'])} "
            f"[{_mb(row['stored_bytes_low'])} - {_mb(row['stored_bytes_high'])}], stored "
            f"{_mb(row['stored_bytes_done'])} ({row['studies_done']} of "
            f"{row['studies_forecast']} studies): {verdict}"
        )
    return EXIT_OK


def _estimate(catalogue: Any, args: argparse.Namespace) -> int:
    from dcmtier.catalogue.estimates import indexed_studies, save
    from dcmtier.cli import EXIT_OK
    from dcmtier.commands.trial import run_trial
    from dcmtier.discovery.index import index_landing, scopes_of
    from dcmtier.discovery.sampling import StudyRecord, draw, sample_size
    from dcmtier.errors import ConfigError
    from dcmtier.tiers import resolve_tiers

    tiers = resolve_tiers(args.tiers)
    stats = index_landing(args.landing, catalogue)
    _say(f"landing index: {stats.files_listed} files, {stats.headers_read} headers read")
    scopes = scopes_of(args.landing)
    with catalogue.engine.connect() as connection:
        indexed = indexed_studies(connection, scopes)
    population = [
        StudyRecord(s.uid, s.modality, s.instances, s.bytes, s.study_date) for s in indexed
    ]
    if not population:
        raise ConfigError(f"no study under {args.landing}")
    n = sample_size(len(population), args.sample, args.sample_fraction)
    sample = draw(population, n, args.seed)
    _say(f"inventory: {len(population)} studies; sampling {len(sample)} (seed {args.seed})")
    files = catalogue.landing_files([s.uid for s in sample], scopes)
    trial = run_trial(sample, files, tiers, args.slots)
    lines = list(project(population, trial, [t.name for t in tiers], args.slots))
    now = datetime.now(UTC)
    estimate_id = f"est-{now:%Y%m%dT%H%M%S.%fZ}"
    lines[-1]["estimate_id"] = estimate_id
    with catalogue.engine.begin() as connection:
        save(connection, estimate_id, now, lines,
             {"sample_studies": len(sample), "seed": args.seed, "slots": args.slots})  # fmt: skip
    for line in lines:
        _print(line, as_json=args.json)
    return EXIT_OK


def project(
    population: Sequence[Any], trial: Any, tiers: Sequence[str], slots: int
) -> Iterator[dict[str, Any]]:
    """The estimate's lines: per tier, per tier x modality, then the total."""
    from dcmtier.discovery.forecast import dag_forecast, header_seconds, study_model
    from dcmtier.discovery.sampling import combine, ratio_estimate
    from dcmtier.discovery.units import Attempt

    by_uid = {s.uid: s for s in population}
    measured = trial.studies
    total_cpu = task_s = 0.0
    for tier in tiers:
        stored = ratio_estimate(population, {u: m.stored[tier] for u, m in measured.items()})
        cpu = ratio_estimate(population, {u: m.cpu_s[tier] for u, m in measured.items()})
        total_cpu += sum(p.value for p in cpu.values())
        alone = ratio_estimate(population, {u: m.tier_wall_s[t] for u, m in measured.items()
                                            for t in [tier]})  # fmt: skip
        task_s += sum(p.value for p in alone.values())
        yield _line("tier", tier, combine(stored.values()), combine(cpu.values()))
        for modality in sorted({h.split("/")[0] for h in stored}):
            parts = [h for h in stored if h.split("/")[0] == modality]
            line = _line("modality", tier, combine(stored[h] for h in parts),
                         combine(cpu[h] for h in parts))  # fmt: skip
            yield {**line, "modality": modality}
    wall = combine(ratio_estimate(population, {u: m.wall_s for u, m in measured.items()}).values())
    files = sum(s.instances for s in population)
    headers = header_seconds(files, {"files": trial.header_files, "seconds": trial.header_s})
    attempts = [
        Attempt(by_uid[u].instances, by_uid[u].bytes, m.tier_wall_s[t])
        for u, m in measured.items()
        for t in tiers
    ]
    model = study_model(attempts)
    dag = dag_forecast(population, len(tiers), task_s, slots, model)
    fitted = dag.model.fitted_from > 0  # else the units' defaults: nothing learnt
    yield {
        "scope": "total", "studies": len(population),
        "source_bytes": sum(s.bytes for s in population),
        "wall_s": round(wall.value + headers, 1),
        "wall_s_low": round(wall.low + headers, 1), "wall_s_high": round(wall.high + headers, 1),
        "wall_s_dag": round(dag.wall_s, 1), "task_instances": dag.task_instances,
        "metadata_bytes": dag.metadata_bytes, "runs": dag.runs, "units": dag.units,
        "sample_studies": len(measured), "sample_s": round(trial.seconds, 1),
        "cpu_hours": round(total_cpu / 3600, 4), "slots": slots,
        "cost_model": dag.model.as_dict(),
        "cost_study_s": dag.model.study_s if fitted else None,
        "cost_byte_s": dag.model.byte_s if fitted else None,
        "cost_instance_s": dag.model.instance_s if fitted else None,
    }  # fmt: skip


def _line(scope: str, tier: str, stored: Projection, cpu: Projection) -> dict[str, Any]:
    return {
        "scope": scope, "tier": tier, "studies": stored.studies,
        "sample_studies": stored.sampled, "source_bytes": stored.source_bytes,
        "stored_bytes": round(stored.value), "stored_bytes_low": round(stored.low),
        "stored_bytes_high": round(stored.high),
        "saved_bytes": stored.source_bytes - round(stored.value),
        "cpu_hours": round(cpu.value / 3600, 4),
    }  # fmt: skip


def _print(line: Mapping[str, Any], *, as_json: bool) -> None:
    from dcmtier.cli import print_json

    if as_json:
        print_json(line)
        return
    if line["scope"] == "total":
        print(
            f"total: {line['studies']} studies, {_mb(line['source_bytes'])}; "
            f"dcmtier process --jobs {line['slots']}: {line['wall_s'] / 3600:.2f} h; DAG on "
            f"{line['slots']} slots: {line['wall_s_dag'] / 3600:.2f} h, "
            f"{line['task_instances']} task instances in {line['runs']} runs, "
            f"{_mb(line['metadata_bytes'])} of Airflow metadata; sample of "
            f"{line['sample_studies']} studies ({line['estimate_id']})"
        )
        return
    where = line["tier"] + (f" {line['modality']}" if line["scope"] == "modality" else "")
    print(
        f"{where}: {line['studies']} studies, {_mb(line['source_bytes'])} -> "
        f"{_mb(line['stored_bytes'])} [{_mb(line['stored_bytes_low'])} - "
        f"{_mb(line['stored_bytes_high'])}], saves {_mb(line['saved_bytes'])}; "
        f"{line['cpu_hours']:.3f} CPU h"
    )


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:,.1f} MB"


def _say(text: str) -> None:
    print(f"estimate: {text}", file=sys.stderr, flush=True)
