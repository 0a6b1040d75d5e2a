"""Run asmtp's benchmark suite: ``python benchmarks/run.py [--quick] [--write-docs]``.

``python benchmarks/run.py campaign`` measures a bulk campaign with its journal against
the bare pool instead (``benchmarks/_campaign.py``); ``python benchmarks/run.py dkim`` the
cost of DKIM signing (``benchmarks/_dkim.py``); ``python benchmarks/run.py distributed`` a
distributed campaign with 1, 2 and 4 taskiq worker processes (``benchmarks/_distributed.py``);
``python benchmarks/run.py compare BASELINE`` asmtp at ``HEAD`` against ``BASELINE``,
interleaved round by round (``benchmarks/_compare.py``); ``python benchmarks/run.py work
BASELINE`` the work per message of both, counted under Valgrind (``benchmarks/_work.py``).

Starts Postfix's ``smtp-sink`` on 127.0.0.1, measures asmtp, aiosmtplib, smtplib and
``smtp-source`` side by side, prints the tables and, with ``--write-docs``, writes them to
``docs/performance.md``. ``--help`` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _campaign, _compare, _distributed, _dkim, _work
from benchmarks._suite import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["campaign"]:
        sys.exit(_campaign.main(sys.argv[2:]))
    if sys.argv[1:2] == ["dkim"]:
        sys.exit(_dkim.main(sys.argv[2:]))
    if sys.argv[1:2] == ["distributed"]:
        sys.exit(_distributed.main(sys.argv[2:]))
    if sys.argv[1:2] == ["compare"]:
        sys.exit(_compare.main(sys.argv[2:]))
    if sys.argv[1:2] == ["work"]:
        sys.exit(_work.main(sys.argv[2:]))
    sys.exit(main())
