"""`python -m agentfield_arq` is the `agentfield-arq` command."""

import sys

from agentfield_arq.ops.cli import main

sys.exit(main())
