"""Bringing data in: the import pipeline (``importer``: read → rows → assign → commit, one module
per step), staged uploads reviewed before they are written (``uploads``, ``upload_*``), grid
replacement (``grid``), and the batch register's operations: roll back, who may, targets
(``batches``).
"""
