"""The figures: what is counted, where, as of when.

- ``hierarchy``: the unit hierarchy as the grid layer declares its levels;
- ``asof``: what a tally counts from (as-of day, known-at moment, grid version);
  ``versions``: grid versions and each feature's unit on every version;
- ``facts``: the per-feature columns a tally counts; ``tally``: per-unit tallies, monthly series;
- ``report``: a :class:`~geo.figures.report.StatsReport` for any exporter; ``viewport``: what a
  web map needs for one viewport; ``overview``: the figures the pages show, as plain data.
"""
