"""gridwatch engine: read surveys, handle CRSs, assign features to unit grids,
tally, store and export.  Nothing in this package imports Flask."""
