import sys

from wordexperts.harness.cli import main

sys.exit(main())
