"""SMTPPool: its synchronous bookkeeping, and whole sends against aiosmtpd and scripted servers."""
