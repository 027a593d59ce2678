"""``python -m fl_blocks`` is the ``fl-blocks`` command."""

import sys

from fl_blocks.cli import main

sys.exit(main())
