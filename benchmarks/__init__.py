"""asmtp's benchmark suite: ``python benchmarks/run.py [--quick] [--write-docs]``.

Postfix's ``smtp-sink`` is the server; asmtp, aiosmtplib, smtplib and Postfix's
``smtp-source`` are the clients. See ``docs/performance.md`` for the method.
"""
