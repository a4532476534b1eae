import sys

from geomem_jax.cli import main

sys.exit(main())
