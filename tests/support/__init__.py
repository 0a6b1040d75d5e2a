"""Test servers and fixtures shared by the asmtp test suite.

``aiosmtpd_server``: aiosmtpd on its own thread, recording what it receives. ``steps``: the
steps of a scripted dialogue, and ``script``: what they mean to any server that plays them.
``scripted``: scripts played over real sockets (TCP, Unix, TLS); ``memory``: the same
scripts played in memory, fast and deterministic. ``fixtures``: the pytest fixtures for all.
"""
