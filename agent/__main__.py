"""`python -m agent`: the CLI, without relying on a console script's shebang (release venvs are built offline)."""

import sys

from agent.cli import main

sys.exit(main())
