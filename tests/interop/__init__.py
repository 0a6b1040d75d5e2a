"""asmtp against real Postfix and Dovecot daemons (the `interop` marker; see docs/interop.md)."""
