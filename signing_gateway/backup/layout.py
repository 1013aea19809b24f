"""What a backup holds and where: the manifest's name, the files whose absolute paths
name the data folder (rewritten on restore), and the settings that point outside it."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.config import SETTINGS_FILE_NAME, Settings

__all__ = ["MANIFEST_NAME", "PATH_FILES", "outside_paths", "rewrite_paths", "softhsm_token_dir"]

MANIFEST_NAME = "MANIFEST.json"
# files of the data folder that may hold its absolute path: the settings, SoftHSM2's
# configuration (directories.tokendir), the demo's credentials (the trust anchor)
PATH_FILES = (SETTINGS_FILE_NAME, "softhsm2.conf", "demo-credentials.json")


def softhsm_token_dir(conf: Path) -> Path | None:
    """The ``directories.tokendir`` a SoftHSM2 configuration file names, if any."""
    try:
        text = conf.read_text("utf-8")
    except OSError:
        return None
    found = re.search(r"^\s*directories\.tokendir\s*=\s*(.+?)\s*$", text, re.MULTILINE)
    return Path(found.group(1)) if found else None


def outside_paths(settings: Settings) -> list[tuple[str, Path]]:
    """The files and folders the installation uses that lie outside its data folder
    (a backup does not hold them): SoftHSM2's configuration and token folder, the
    trust anchors."""
    data_dir = settings.data_dir.resolve()
    conf = settings.effective_softhsm2_conf.resolve()
    candidates = [
        ("the SoftHSM2 configuration", conf),
        ("the trust anchors", settings.effective_trust_anchors_file.resolve()),
    ]
    tokens = softhsm_token_dir(conf)
    if tokens is not None:
        candidates.append(("the SoftHSM2 token folder", tokens.resolve()))
    return [
        (what, path)
        for what, path in candidates
        if path.exists() and not path.is_relative_to(data_dir)
    ]


def rewrite_paths(folder: Path, old: str, new: str) -> list[str]:
    """In the files of :data:`PATH_FILES` under ``folder``, replace the absolute path
    ``old`` (only where a whole path component ends) by ``new``; the names of the files
    changed."""
    pattern = re.compile(re.escape(old) + r"(?=[/\\\"'\s]|$)", re.MULTILINE)
    changed = []
    for name in PATH_FILES:
        path = folder / name
        if not path.is_file():
            continue
        text = path.read_text("utf-8")
        rewritten = pattern.sub(lambda _match: new, text)
        if rewritten != text:
            path.write_text(rewritten, "utf-8")
            changed.append(name)
    return changed
