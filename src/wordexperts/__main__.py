import sys

from wordexperts.cli import main

sys.exit(main())
