"""Helpers the tests share: :mod:`tests.helpers.builders` makes survey files and request bodies,
:mod:`tests.helpers.web` signs in and serves the app, :mod:`tests.helpers.needs` says what a test
needs from the machine.  Fixtures live in ``tests/conftest.py``, which pytest loads itself."""
