"""TLS (STARTTLS, implicit), SASL authentication, the TLS policy and LMTP, end to end."""
