"""``python -m geo.cli``: the engine's command line (:func:`geo.cli.main`)."""

import sys

from geo.cli import main

sys.exit(main())
