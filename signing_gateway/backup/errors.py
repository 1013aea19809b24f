"""Why a backup or a restore was refused: each error has a stable ``code`` the command
line prints before its message."""

from __future__ import annotations

__all__ = ["BackupDamaged", "BackupError", "RestoreTargetNotEmpty", "WrongPassphrase"]


class BackupError(Exception):
    """A backup or restore that cannot go on; ``code`` names why, ``detail`` says it
    for the operator."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class WrongPassphrase(BackupError):
    """The passphrase does not open the backup file (or its header was altered)."""

    def __init__(self, detail: str) -> None:
        super().__init__("backup_passphrase_wrong", detail)


class BackupDamaged(BackupError):
    """The backup file is not one, or was truncated, altered or extended."""

    def __init__(self, detail: str) -> None:
        super().__init__("backup_damaged", detail)


class RestoreTargetNotEmpty(BackupError):
    """The folder to restore into exists and holds something."""

    def __init__(self, detail: str) -> None:
        super().__init__("restore_target_not_empty", detail)
