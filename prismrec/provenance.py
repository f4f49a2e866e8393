"""What a results file records about the run that made it: versions, git commit, date, command.

Example:
    >>> info = run_provenance()
    >>> sorted(info)[:3]
    ['command', 'date', 'git_commit']
"""
from __future__ import annotations

import datetime as _datetime
import os
import platform
import subprocess
import sys
from pathlib import Path


def git_commit(folder: str | Path | None = None) -> dict | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``folder`` (default: this package)."""
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (an installed wheel), or git is missing
    return {"commit": sha, "dirty": bool(status.strip())}


def run_provenance() -> dict:
    """Versions of PrismRec, Python, torch, numpy; the git commit when there is one; date and command."""
    import numpy
    import torch

    import prismrec

    return {
        "prismrec_version": prismrec.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
    }


def provenance_line(info: dict) -> str:
    """One line for humans: ``prismrec 0.1.0 (commit 1a2b3c4, dirty), Python 3.11.7, torch 2.13.0, 2026-12-01``."""
    commit = info.get("git_commit")
    where = f" (commit {commit['commit'][:10]}{', uncommitted changes' if commit['dirty'] else ''})" if commit else ""
    return (f"prismrec {info['prismrec_version']}{where}, Python {info['python']}, torch {info['torch']}, "
            f"numpy {info['numpy']}, {info['date']}; command: `{info['command']}`")
