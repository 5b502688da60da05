"""Reading survey files: from an upload on disk to a table of decoded values with a settled CRS.

- ``sources``: open an upload (a file, a folder, a zip) and list the datasets in it
- ``zips``: unpack zips safely (zip slip, bombs, nesting, GBK entry names)
- ``readers``: the reader registry keyed by format, ``read_dataset``, settling the CRS
- ``content``: what a file is before anything opens it, one check per format
- ``vectors``, ``tables``: the built-in readers (shapefile and GDAL formats; CSV and XLSX)
- ``datasets``: ``Dataset``, ``RawTable`` and the size limits
- ``dbf``, ``shp_checks``: fast DBF/point readers; damage checks on .shp/.shx/.dbf
- ``encoding``, ``charsets``: DBF encoding detection; accepted encodings, CSV decoding
- ``crs``, ``crs_fit``, ``crs_declared``, ``crs_infer``, ``gcj02``: parsing a CRS, judging
  rows against one, checking a declared one, inferring one, GCJ-02
- ``fields``, ``values``, ``vocab``, ``display``, ``mappings``: field names, numbers and
  dates, status vocabularies, text safe to store and show, value mappings people give
- ``untrusted``: the confined helper process every file a user sends is read in
"""
