"""The viewers' codecs in one long-lived Node.js process (``node/decode.mjs``).

Each frame goes in as one JSON line (its codestream in base64, the header fields the loader
passes along) and comes back as one: the samples, what the codec says of the image (size,
components, bits per sample, sign) and the time its decode took inside Node.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from dcmtier.errors import DcmtierError

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "decode.mjs"
ENV_NODE = "DCMTIER_NODE"  # the node binary to use (default: `node` on PATH)
MIN_NODE_MAJOR = 20
_DTYPES = {"uint8": "<u1", "int8": "<i1", "uint16": "<u2", "int16": "<i2"}


class ViewerUnavailable(DcmtierError):
    """Node.js or the viewers' codec packages are not installed."""


@dataclass(frozen=True)
class Decoded:
    """One frame as a viewer's codec returned it."""

    pixels: NDArray[Any]  # flat, in the typed array the loader would hold
    columns: int
    rows: int
    components: int
    bits: int  # bits per sample the codestream declares
    signed: bool  # the codestream's sign flag
    ms: float  # the decode inside Node


@dataclass(frozen=True)
class FrameRequest:
    """A frame's codestream and the header fields the loader decodes it with."""

    codestream: bytes
    pixel_representation: int
    bits_allocated: int
    bits_stored: int


def node_binary() -> str:
    """``$DCMTIER_NODE`` or ``node`` on PATH, of version 20 or later."""
    found = os.environ.get(ENV_NODE) or shutil.which("node")
    if not found:
        raise ViewerUnavailable(
            "Node.js is not installed: the viewer check runs the viewers' codecs in Node.js 20+"
        )
    try:
        version = subprocess.run(
            [found, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ViewerUnavailable(f"{found} does not run: {exc}") from exc
    major = int(version.lstrip("v").split(".")[0] or 0)
    if major < MIN_NODE_MAJOR:
        raise ViewerUnavailable(f"Node.js {version} is too old: {MIN_NODE_MAJOR} or later")
    return found


def check_installed() -> None:
    """Raise `ViewerUnavailable` unless the pinned codec packages are installed."""
    if not (NODE_DIR / "node_modules" / ".package-lock.json").is_file():
        raise ViewerUnavailable(
            f"the viewers' codec packages are not installed: run `make install` (or `npm ci "
            f"--prefix {NODE_DIR}`)"
        )


class NodeDecoder:
    """The Node process: `decode` one frame at a time, `versions` of the codec packages."""

    def __init__(self) -> None:
        check_installed()
        self._process = subprocess.Popen(
            [node_binary(), str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the codecs' own log lines
            text=True,
            cwd=NODE_DIR,
        )

    def __enter__(self) -> NodeDecoder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        stdin: IO[str] | None = self._process.stdin
        if stdin is not None and not stdin.closed:
            stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            line = stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            code = self._process.poll()
            raise ViewerUnavailable(f"the Node.js decoder stopped (exit status {code})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def versions(self) -> dict[str, dict[str, str]]:
        """viewer -> codec -> ``package@version`` as installed."""
        answer = self._ask({"versions": True})
        if not answer["ok"]:
            raise ViewerUnavailable(f"the viewers' codec packages: {answer['error']}")
        found: dict[str, dict[str, str]] = answer["versions"]
        return found

    def decode(self, viewer: str, codec: str, frame: FrameRequest) -> Decoded | str:
        """The frame as ``viewer``'s ``codec`` decodes it, or the error it raised."""
        answer = self._ask(
            {
                "viewer": viewer,
                "codec": codec,
                "data": base64.b64encode(frame.codestream).decode("ascii"),
                "pixel_representation": frame.pixel_representation,
                "bits_allocated": frame.bits_allocated,
                "bits_stored": frame.bits_stored,
            }
        )
        if not answer["ok"]:
            return str(answer["error"])
        dtype = np.dtype(_DTYPES[answer["dtype"]])
        return Decoded(
            pixels=np.frombuffer(base64.b64decode(answer["pixels"]), dtype=dtype),
            columns=int(answer["columns"]),
            rows=int(answer["rows"]),
            components=int(answer["components"]),
            bits=int(answer["bits"]),
            signed=bool(answer["signed"]),
            ms=float(answer["ms"]),
        )
