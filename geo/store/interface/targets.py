"""Targets: a value per (unit code, layer, metric), set and rolled back by targets batches and
kept as they were at every transaction."""

from __future__ import annotations

from typing import Protocol

import pandas as pd


class TargetStore(Protocol):
    """Yearly targets, written inside the store's transaction."""

    def targets(self, tx: int | None = None) -> pd.DataFrame:
        """Targets now, or as they were at transaction ``tx``."""
        ...

    def set_targets(self, rows: pd.DataFrame, batch_id: int) -> int:
        """Set the targets in ``rows`` (columns ``code``, ``layer``, ``metric``, ``target``) as batch
        ``batch_id``'s, keeping the values they replace; returns how many were set."""
        ...

    def rollback_targets(self, batch_id: int) -> int:
        """Take out the values of targets batch ``batch_id``: each comes back as the value of the
        latest earlier live batch that set it (none: no target).  Returns how many were taken out."""
        ...
