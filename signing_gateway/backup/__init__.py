"""Backup and restore of an installation's data folder: one encrypted, authenticated
file made while the gateway serves (:func:`create_backup`), restored into a new folder
(:func:`restore_backup`). docs/backup.md says what is in it and how to run it."""

from signing_gateway.backup.create import BackupReport, create_backup
from signing_gateway.backup.errors import (
    BackupDamaged,
    BackupError,
    RestoreTargetNotEmpty,
    WrongPassphrase,
)
from signing_gateway.backup.restore import RestoreReport, audit_restore, restore_backup

__all__ = [
    "BackupDamaged",
    "BackupError",
    "BackupReport",
    "RestoreReport",
    "RestoreTargetNotEmpty",
    "WrongPassphrase",
    "audit_restore",
    "create_backup",
    "restore_backup",
]
