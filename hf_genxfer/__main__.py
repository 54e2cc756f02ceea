"""`python -m hf_genxfer ...` (what `accelerate launch -m hf_genxfer train RECIPE` runs) is the `genxfer` command."""

import sys

from .cli import main

sys.exit(main())
