"""The batch register: one entry per import of a survey layer, of the unit grid or of targets,
with the kind of batch it is, its counts and its archived source files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from layers.base import LayerSpec

#: What a batch wrote: features of a survey layer (``import``), the unit grid as a new grid
#: version (``grid``) or yearly targets (``targets``).  Recorded with the batch; it decides how
#: the batch is rolled back, who may roll it back and how its audit entry is named.
BatchKind = Literal["import", "grid", "targets"]


def batch_kind(spec: LayerSpec) -> BatchKind:
    """The kind of a batch importing layer ``spec``: ``"grid"`` for the unit grid, else ``"import"``.

    Targets are no layer: their loader (:func:`geo.imports.batches.load_targets`) registers its
    batches as ``"targets"``.
    """
    return "grid" if spec.is_grid else "import"


@dataclass
class Batch:
    """One import: a file, its checksum, its kind (see :data:`BatchKind`) and what it changed."""

    id: int
    layer: str
    source_name: str
    checksum: str
    created_at: str
    user: str | None
    status: Literal["active", "rolled_back"]
    rows_read: int
    added: int
    updated: int
    unchanged: int
    rejected: int
    encoding: str | None
    crs: str | None
    kind: BatchKind
    rolled_back_at: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The batch as the API and ``--json`` show it (without its report and kind)."""
        out = dict(self.__dict__)
        out.pop("report", None)
        out.pop("kind", None)
        return out


class BatchRegister(Protocol):
    """The batches written, their archived sources and their state."""

    def new_batch(self, batch: Batch, sources: list[Path] | None) -> int:
        """Register a batch (with its kind) and keep a copy of its source files; the write
        transaction under way is recorded as one of the batch's kind."""
        ...

    def finish_batch(self, batch_id: int, counts: dict[str, int], report: dict[str, Any]) -> None:
        """Record the final counts of a batch (``added``, ``updated``, ``unchanged``, ``rejected``,
        ``rows_read``; missing ones 0) and its report, with its audit entry."""
        ...

    def batches(self, layer: str | None = None) -> list[Batch]:
        """Every batch (of ``layer``), rolled back ones too, oldest first."""
        ...

    def batch(self, batch_id: int) -> Batch:
        """Batch ``batch_id``; :class:`geo.errors.NotFound` when there is none."""
        ...

    def find_checksum(self, layer: str, checksum: str, keys: np.ndarray | None = None) -> Batch | None:
        """The live batch that imported a file with ``checksum`` into ``layer`` while its
        content is still current (importing the file again would change nothing); ``keys``,
        the file's survey ids, make the check exact (see the GeoPackage backend)."""
        ...

    def key_batches(self, spec: LayerSpec, keys: np.ndarray) -> dict[str, tuple[int, str | None]]:
        """For each of ``keys`` held by a current row: (batch that last wrote it, that batch's user)."""
        ...

    def archived_source(self, batch_id: int) -> tuple[str, bytes]:
        """The original upload of batch ``batch_id`` as (file name, bytes): the file itself, or a zip
        of its files; :class:`geo.errors.NotFound` when none was kept."""
        ...

    def mark_rolled_back(self, batch_id: int) -> None:
        """Mark a live batch rolled back, with its audit entry; :class:`geo.errors.Conflict` when it
        already is, :class:`geo.errors.NotFound` for an unknown id."""
        ...
