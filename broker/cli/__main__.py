"""``python -m broker.cli``: the same as the ``liaison`` script."""

import sys

from broker.cli import main

sys.exit(main())
