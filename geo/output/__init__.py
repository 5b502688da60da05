"""Taking figures out: the statistics exporters in a registry keyed by format (``export``, one
``to_<format>`` module each, sharing ``tables``), the feature ledger (``ledger``), the audit
trail as CSV (``audit``) and generated unit grids (``gridgen``).
"""
