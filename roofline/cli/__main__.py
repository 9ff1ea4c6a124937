"""``python -m roofline.cli``: the same as the ``roofline`` command."""

from roofline.cli.main import main

raise SystemExit(main())
