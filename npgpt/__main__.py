"""``python -m npgpt ...`` runs the command line, as the ``npgpt`` script does."""

import sys

from .cli import main

sys.exit(main())
