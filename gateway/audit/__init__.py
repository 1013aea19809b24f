"""The hash-chained audit log (`log`, DESIGN.md invariant 5) and its signed checkpoints
(`checkpoints`)."""
