"""`python -m kwil_sync.cli ...`: the `kwil-sync` command."""

import sys

from kwil_sync.cli.main import main

sys.exit(main())
