"""Helpers the tests share: :mod:`tests.helpers.builders` makes survey files and request bodies,
:mod:`tests.helpers.web` signs in and serves the app, :mod:`tests.helpers.needs` says what a test
needs from the machine, :mod:`tests.helpers.load` runs uploads and map reads at once under gunicorn
(the load test; ``bench/bench_load.py`` is its command line).  Fixtures live in
``tests/conftest.py``, which pytest loads itself."""
