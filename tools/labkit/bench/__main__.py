"""`python -m labkit.bench`: the LoRA benchmark (labkit.bench.lora)."""

import sys

from labkit.bench.lora import main

sys.exit(main())
