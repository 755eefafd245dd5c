"""``python -m pytest_cutover`` runs the ``cutover`` command."""

import sys

from pytest_cutover.cli import main

sys.exit(main())
