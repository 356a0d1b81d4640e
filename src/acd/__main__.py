"""``python -m acd`` is the ``acd`` command."""

import sys

from .cli import main

sys.exit(main())
