"""What ``dcmtier process`` shows while it works, on stderr.

In a terminal: rich progress bars for all studies (instances), the current study (instances
compressed into every tier) and its tiers written (Parquet, ZIP, catalogue), each with an ETA.
Elsewhere (a pipe, a log file, CI): a plain line when a study starts and ends, and one every
``every`` seconds in between with the same counts and ETA.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any, Protocol

from dcmtier.records import Study, StudyTierResult

PLAIN_EVERY_SECONDS = 10.0


def short_uid(uid: str) -> str:
    """The last 12 characters of a UID, as the DAG names its mapped tasks."""
    return uid if len(uid) <= 13 else f"…{uid[-12:]}"


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "ETA -"
    minutes, secs = divmod(round(seconds), 60)
    return f"ETA {minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class Counter:
    """Units done of a total since a start time, and the time left at the rate so far."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()

    def eta(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if not self.done or elapsed <= 0:
            return None
        return (self.total - self.done) * elapsed / self.done


class HasFiles(Protocol):
    """A study, staged or still on its store: what the totals count."""

    @property
    def files(self) -> Sequence[object]: ...


class ProcessProgress:
    """Progress of one ``dcmtier process`` run: rich bars in a terminal, else plain lines.

    Use as a context manager; call ``start(study)`` before each study and pass the returned
    watcher to ``process_study``; ``finish(study)`` after it.
    """

    def __init__(
        self,
        studies: Sequence[HasFiles],
        tiers: int,
        *,
        terminal: bool | None = None,
        stream: IO[str] | None = None,
        every: float = PLAIN_EVERY_SECONDS,
    ) -> None:
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.studies, self.tiers, self.every = len(studies), tiers, every
        self.all = Counter(sum(len(s.files) for s in studies))
        self.index = 0
        self._bars: Any = None
        self._task: dict[str, Any] = {}

    def __enter__(self) -> ProcessProgress:
        if self.terminal:
            self._bars = _rich_bars(self.stream)
            self._bars.start()
            if self.studies > 1:
                self._task["all"] = self._bars.add_task(
                    f"{self.studies} studies, instances", total=self.all.total
                )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def start(self, study: Study) -> StudyWatcher:
        self.index += 1
        watcher = StudyWatcher(self, study)
        if self._bars is not None:
            label = f"study {self.index}/{self.studies} {short_uid(study.uid)}"
            self._task["study"] = self._bars.add_task(label, total=len(study.files))
            self._task["tiers"] = self._bars.add_task("  tiers written", total=self.tiers)
        else:
            self.say(
                f"study {self.index}/{self.studies} {study.uid}: "
                f"{len(study.files)} instances x {self.tiers} tiers"
            )
        return watcher

    def finish(self, watcher: StudyWatcher) -> None:
        elapsed = time.monotonic() - watcher.instances.started
        line = (
            f"study {self.index}/{self.studies} {watcher.study.uid}: done, "
            f"{watcher.instances.total} instances x {self.tiers} tiers in {elapsed:.1f} s"
        )
        if self._bars is not None:
            for key in ("study", "tiers"):
                self._bars.remove_task(self._task.pop(key))
            self._bars.console.print(line, soft_wrap=True, markup=False, highlight=False)
        else:
            self.say(line)

    def print(self, line: str) -> None:
        """A result line on stdout; above the bars when they share its terminal."""
        if self._bars is not None and sys.stdout.isatty():
            self._bars.console.print(line, soft_wrap=True, markup=False, highlight=False)
        else:
            sys.stdout.write(line + "\n")

    def say(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def advance(self, key: str, amount: int = 1) -> None:
        if self._bars is not None and key in self._task:
            self._bars.advance(self._task[key], amount)


class StudyWatcher:
    """The ``Watcher`` ``process_study`` reports one study's progress to."""

    def __init__(self, run: ProcessProgress, study: Study) -> None:
        self.run, self.study = run, study
        self.instances = Counter(len(study.files))
        self.tiers = Counter(run.tiers)
        self.source_bytes = 0
        self.last_line = time.monotonic()

    def instance_done(self, source_bytes: int) -> None:
        self.instances.done += 1
        if self.instances.done == self.instances.total:
            self.tiers.started = time.monotonic()  # the tiers are written after the last one
        self.run.all.done += 1
        self.source_bytes += source_bytes
        self.run.advance("study")
        self.run.advance("all")
        self._maybe_line()

    def tier_done(self, result: StudyTierResult) -> None:
        self.tiers.done += 1
        self.run.advance("tiers")
        self._maybe_line()

    def _maybe_line(self) -> None:
        if self.run.terminal or time.monotonic() - self.last_line < self.run.every:
            return
        self.last_line = time.monotonic()
        self.run.say(self.line())

    def line(self) -> str:
        """The plain progress line: counts, throughput and the ETA of the current phase."""
        elapsed = max(time.monotonic() - self.instances.started, 1e-9)
        run = self.run
        head = f"study {run.index}/{run.studies} {self.study.uid}: "
        if self.instances.done < self.instances.total:
            text = (
                f"{self.instances.done}/{self.instances.total} instances "
                f"({100 * self.instances.done // max(self.instances.total, 1)} %), "
                f"{self.source_bytes / elapsed / 1e6:.1f} MB/s of source, "
                f"{eta_text(self.instances.eta())}"
            )
        else:
            text = (
                f"tiers written {self.tiers.done}/{self.tiers.total}, {eta_text(self.tiers.eta())}"
            )
        if run.studies > 1:
            text += (
                f"; all studies {run.all.done}/{run.all.total} instances, {eta_text(run.all.eta())}"
            )
        return head + text


def _rich_bars(stream: IO[str]) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=stream, force_terminal=True),
        transient=True,
        redirect_stdout=False,  # results go through ProcessProgress.print
        redirect_stderr=False,
    )
