"""A preview's dry run (a write transaction that rolls back) must not cost the next map read a
full re-read of the layer: the decoded rows kept before it are followed by the change log."""

from __future__ import annotations

import numpy as np
import shapely

import layers
from geo.imports.importer import import_file
from geo.store.backends import open_store
from geo.store.gpkg.feature_reads import GpkgFeatureReads
from tests.helpers.builders import X0, Y0, survey_shp


def test_the_kept_geometry_is_followed_after_a_dry_run(gridded_store, tmp_path, monkeypatch):
    store = gridded_store
    spec = layers.get("demolition")
    import_file(store, "demolition", survey_shp(tmp_path / "a", n=20))
    fids, geoms = store.read_geometry(spec)  # decoded and kept

    follows: list[bool] = []
    follow = GpkgFeatureReads._follow_geometry

    def counted(self, spec):
        out = follow(self, spec)
        follows.append(out is not None)
        return out

    monkeypatch.setattr(GpkgFeatureReads, "_follow_geometry", counted)
    more = shapely.points(np.column_stack([X0 + 60 + np.arange(5), np.full(5, Y0 - 70.0)]))
    new_sites = survey_shp(tmp_path / "b", geoms=more)
    import_file(store, "demolition", new_sites, dry_run=True)
    # a web worker opens the store per request: the next map read comes through another handle
    with open_store(store.location) as reader:
        after_fids, after_geoms = reader.read_geometry(spec)
    assert follows == [True]  # followed from the rows kept before the dry run, not read again
    assert np.array_equal(after_fids, fids) and all(shapely.equals(after_geoms, geoms))

    import_file(store, "demolition", new_sites)  # a real commit keeps the copy current itself
    committed_fids, _ = store.read_geometry(spec)
    assert len(committed_fids) == len(fids)  # the same 案件编号: updated in place
    assert store._before_write() == {}  # nothing of the earlier generations held any more
