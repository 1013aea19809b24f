"""The administration command line as the clerk runs it: ``signing-gateway ...`` in a
child process on the test installation's data folder."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(installation, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "signing_gateway.cli",
            *args,
            "--data-dir",
            str(installation.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def cli_input(installation, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "signing_gateway.cli",
            *args,
            "--data-dir",
            str(installation.data_dir),
        ],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
