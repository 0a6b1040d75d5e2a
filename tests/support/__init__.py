"""Test servers and fixtures shared by the asmtp test suite."""
