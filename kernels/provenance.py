"""When, where and from which commit a figure was measured: stamped on results, calibrations and tables."""

from __future__ import annotations

import datetime
import socket
import subprocess
import sys
from pathlib import Path


def provenance() -> dict[str, str]:
    """When, where and from which commit a figure was measured."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "commit": commit,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
