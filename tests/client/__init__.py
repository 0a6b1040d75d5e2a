"""The smtplib-shaped client against aiosmtpd and scripted servers, on every event loop."""
