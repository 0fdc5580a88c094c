"""The reference chain users compare dcmtier with: one ``gdcmconv`` process per file.

``gdcmconv --j2k IN OUT`` for lossless and ``gdcmconv --lossy --j2k -r RATE --irreversible IN
OUT`` for a rate (docs/concepts/reference-survey.md), run from a shell loop as a user would.
gdcmconv 3.0 can exit 0 without writing anything for lossy on some files, so every output is
checked and the missing or empty ones are counted as failures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dcmtier.bench.timing import Timing, clock
from dcmtier.errors import ConfigError
from dcmtier.tiers import Tier

DEBIAN_PACKAGE = "libgdcm-tools"
# Each chain is a shell loop over "SRC<TAB>DST" lines: one gdcmconv process per file.
_LOOP = 'while IFS="$(printf "\\t")" read -r src dst; do "$@" "$src" "$dst"; done'


@dataclass
class ChainRun:
    """One pass of the chain over the files: its timing, and the files it failed to write."""

    timing: Timing
    files: int
    failures: int
    outputs: list[Path]


def ensure_gdcmconv(explicit: str | None, *, install: bool) -> str:
    """The gdcmconv to run: ``explicit``, else the one on PATH, else (``install``) Debian's.

    Installing needs apt-get and root (or sudo) and happens only when asked
    (``dcmtier bench --install-tools``); otherwise a missing gdcmconv is a ConfigError saying
    what to install.
    """
    found = shutil.which(explicit or "gdcmconv")
    if found:
        return found
    if explicit:
        raise ConfigError(f"gdcmconv not found at {explicit}")
    if install:
        _apt_install(DEBIAN_PACKAGE)
        found = shutil.which("gdcmconv")
        if found:
            return found
    raise ConfigError(
        f"gdcmconv is not installed: install the Debian package {DEBIAN_PACKAGE} "
        f"(sudo apt-get install {DEBIAN_PACKAGE}), pass --gdcmconv PATH, or rerun with "
        "--install-tools to let the bench install it"
    )


def _apt_install(package: str) -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        raise ConfigError(f"gdcmconv is missing and there is no apt-get to install {package}")
    sudo = [] if os.geteuid() == 0 else [shutil.which("sudo") or "sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["update", "-qq"], ["install", "-y", "-qq", package]):
        done = subprocess.run(
            [*sudo, apt, *command], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ConfigError(
                f"could not install {package} ({' '.join(command)}): {done.stderr.strip()[-300:]}"
            )


def gdcmconv_version(gdcmconv: str) -> str:
    done = subprocess.run([gdcmconv, "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def gdcmconv_args(tier: Tier) -> list[str]:
    """The gdcmconv options that make ``tier``'s kind of output (J2K only)."""
    if tier.codec.label != "j2k":
        raise ConfigError(f"gdcmconv has no equivalent of {tier.name}: J2K tiers only")
    if tier.target_ratio is None:
        return ["--j2k"]
    return ["--lossy", "--j2k", "-r", f"{tier.target_ratio:g}", "--irreversible"]


def run_chain(
    gdcmconv: str, files: Sequence[Path], tier: Tier, out_dir: Path, *, parallel: int = 1
) -> ChainRun:
    """Convert every file with one gdcmconv process each; ``parallel`` shell loops at once.

    With ``parallel`` > 1 the files are dealt round-robin to that many loops (``xargs -P``
    with static shares). Outputs go to ``out_dir``, which must be empty or absent.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = [out_dir / f"{index:06d}.dcm" for index in range(len(files))]
    pairs = list(zip(files, outputs, strict=True))
    loops_wanted = max(1, min(parallel, len(pairs)))
    lists = [out_dir / f".share-{k}.txt" for k in range(loops_wanted)]
    for k, share in enumerate(lists):
        share.write_text("".join(f"{src}\t{dst}\n" for src, dst in pairs[k::loops_wanted]))
    command = ["sh", "-c", _LOOP, "chain", gdcmconv, *gdcmconv_args(tier)]
    with clock() as timing:
        loops = [_start_loop(command, share) for share in lists]
        for loop in loops:
            loop.wait()  # a failed file shows as a missing output, counted below
    failures = sum(1 for path in outputs if not path.is_file() or path.stat().st_size == 0)
    return ChainRun(timing, len(files), failures, outputs)


def _start_loop(command: list[str], share: Path) -> subprocess.Popen[bytes]:
    with share.open("rb") as stdin:
        return subprocess.Popen(
            command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )


def encoded_pixel_bytes(path: Path) -> int | None:
    """Bytes of the codestream fragments in a gdcmconv output (None when it is missing)."""
    from pydicom import dcmread
    from pydicom.encaps import generate_fragments

    if not path.is_file() or path.stat().st_size == 0:
        return None
    ds = dcmread(path)
    return sum(len(fragment) for fragment in generate_fragments(ds.PixelData))
