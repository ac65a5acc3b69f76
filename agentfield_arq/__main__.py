"""`python -m agentfield_arq` is the `agentfield-arq` command."""

import sys

from agentfield_arq.cli import main

sys.exit(main())
