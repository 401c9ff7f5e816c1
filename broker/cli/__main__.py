"""``python -m broker.cli``: the same as the ``liaison`` script."""

import sys

from broker.cli import main

if __name__ == "__main__":  # not when a worker process imports it (broker.service.audit_workers)
    sys.exit(main())
