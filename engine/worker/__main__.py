import sys

from engine.worker.main import main

sys.exit(main())
