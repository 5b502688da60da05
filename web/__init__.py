"""Flask blueprints: a thin layer over the engine in :mod:`geo`."""
