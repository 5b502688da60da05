"""The load harness: surveyors uploading and map users reading at the same time, under gunicorn
with the sample settings.  :mod:`~tests.helpers.load.server` loads the demo district into a
fresh store and starts gunicorn, :mod:`~tests.helpers.load.clients` holds the reader and
uploader client processes and their tallies, :mod:`~tests.helpers.load.run` runs them, checks
that the features reconcile and prints the figures.  ``tests/test_load.py`` runs a short form;
``bench/bench_load.py`` is its command line."""
