"""XOAUTH2 and OAUTHBEARER end to end: Postfix submission asks Dovecot, whose ``oauth2``
passdb asks a token introspection endpoint the test runs. Valid tokens authenticate and
mail is delivered; a refused token goes through the mechanism's error round (RFC 7628
§3.2.3) to ``535``; no token ever shows in a log, a transcript or an exception."""

from __future__ import annotations

import base64
import email.message
import json
import logging
import re
import ssl
from collections.abc import Callable

import pytest

import asmtp
from asmtp.auth import Mechanism, OAuthBearer, XOAuth2
from interop import _kit
from interop._oauth import OAuthStack
from interop.realservers import Servers

pytestmark = [pytest.mark.anyio, pytest.mark.server("Postfix + Dovecot oauth2")]

MechanismFactory = Callable[[str, str], Mechanism]
MECHANISMS = pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda user, token: XOAuth2(user, token), id="XOAUTH2"),
        pytest.param(lambda user, token: OAuthBearer(user, token), id="OAUTHBEARER"),
    ],
)


ERROR_CHALLENGES = {
    "XOAUTH2": {"status": "401", "schemes": "bearer", "scope": "mail"},
    "OAUTHBEARER": {"status": "invalid_token"},
}
"""The JSON each mechanism's error challenge carries, as Dovecot 2.3 sends it."""

_SESSION_END = "postfix/oauth/smtpd"


def submission(servers: Servers) -> asmtp.SMTP:
    return asmtp.SMTP(servers.host, servers.oauth_submission_port, _kit.ME, timeout=_kit.TIMEOUT)


def _secrets_of(token: str, mechanism: Mechanism) -> list[bytes]:
    """The token and the base64 initial response that carries it, as they could leak."""
    first = mechanism.initial_response() or b""
    return [token.encode(), base64.b64encode(first)]


def _leaks(secrets: list[bytes], *texts: bytes) -> list[bytes]:
    return [secret for secret in secrets for text in texts if secret in text]


@pytest.mark.feature("OAuth: mechanisms offered")
async def test_only_the_oauth_mechanisms_are_offered_and_only_under_tls(
    servers: Servers, oauth: OAuthStack, ca_context: ssl.SSLContext
) -> None:
    async with submission(servers) as smtp:
        await smtp.ehlo()
        assert not smtp.has_extn("auth")
        await smtp.starttls(context=ca_context)  # and EHLO again
        assert sorted(smtp.esmtp_features["auth"].split()) == ["OAUTHBEARER", "XOAUTH2"]


@pytest.mark.feature("OAuth: valid token, SMTP.auth()")
@MECHANISMS
async def test_valid_token_authenticates_and_the_message_is_delivered(
    servers: Servers, oauth: OAuthStack, ca_context: ssl.SSLContext, make: MechanismFactory
) -> None:
    user = servers.address("user")
    mechanism = make(user, oauth.introspection.issue(user))
    asked = oauth.introspection.requests
    marker = _kit.token()
    sent = _kit.message(marker, f"authorised by {mechanism.name}\r\n.dot\r\n".encode())
    async with submission(servers) as smtp:
        await smtp.starttls(context=ca_context)  # and EHLO again
        code, text = await smtp.auth(mechanism.name, mechanism)
        assert (code, text[:5]) == (235, b"2.7.0")
        assert await smtp.sendmail(user, [user], sent) == {}
    assert oauth.introspection.requests > asked  # Dovecot asked the endpoint
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert _kit.body_after_headers(stored) == _kit.expected_body(sent)


@pytest.mark.feature("OAuth: one-shot send_message(mechanism=)")
@MECHANISMS
async def test_one_shot_send_message_with_a_mechanism(
    servers: Servers, oauth: OAuthStack, ca_context: ssl.SSLContext, make: MechanismFactory
) -> None:
    user = servers.address("user")
    mechanism = make(user, oauth.introspection.issue(user))
    marker = _kit.token()
    msg = email.message.EmailMessage()
    msg["From"] = user
    msg["To"] = user
    msg["Subject"] = f"interop {marker}"
    msg.set_content(f"asmtp.send_message(mechanism={mechanism.name})\n")
    refused = await asmtp.send_message(
        msg,
        host=servers.host,
        port=servers.oauth_submission_port,
        tls="starttls",
        context=ca_context,
        mechanism=mechanism,
        local_hostname=_kit.ME,
        timeout=_kit.TIMEOUT,
        deadline=30,
    )
    assert refused == {}
    stored = await _kit.delivered(servers.maildir("user"), marker)
    assert (
        _kit.body_after_headers(stored)
        == f"asmtp.send_message(mechanism={mechanism.name})\n".encode()
    )


def _transcript(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "asmtp"]


def _error_round(transcript: list[str]) -> dict[str, object]:
    """The JSON error challenge, after checking the round: 334, our answer, then 535."""
    auth = next(i for i, line in enumerate(transcript) if line.startswith("send: b'AUTH "))
    challenge, answer, refusal = transcript[auth + 1 : auth + 4]
    found = re.fullmatch(r"reply: 334 b'([A-Za-z0-9+/=]+)'", challenge)
    assert found, transcript[auth:]
    assert answer.startswith("send: ") and "redacted" in answer, answer
    # The answer was not the cancelling "*" (that gets 501): the server refused the token.
    assert refusal.startswith("reply: 535 "), refusal
    decoded: dict[str, object] = json.loads(base64.b64decode(found[1]))
    return decoded


@pytest.mark.feature("OAuth: refused token, RFC 7628 error round")
@MECHANISMS
@pytest.mark.parametrize("why", ["unknown token", "token of another user"])
async def test_refused_token_gets_the_json_error_round_then_535(
    servers: Servers,
    oauth: OAuthStack,
    ca_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    make: MechanismFactory,
    why: str,
) -> None:
    user = servers.address("user")
    if why == "unknown token":
        token = oauth.introspection.issue(user)
        oauth.introspection.revoke(token)
    else:
        token = oauth.introspection.issue(servers.address("sender"))
    mechanism = make(user, token)
    caplog.set_level(logging.DEBUG, logger="asmtp")
    async with submission(servers) as smtp:
        await smtp.starttls(context=ca_context)  # and EHLO again
        with pytest.raises(asmtp.SMTPAuthenticationError) as caught:
            await smtp.auth(mechanism.name, mechanism)
        assert caught.value.smtp_code == 535
        error = _error_round(_transcript(caplog))
        # Dovecot answers XOAUTH2 in Google's shape and OAUTHBEARER with an RFC 6750 §3.1
        # error code (RFC 7628 §3.2.2).
        assert error == ERROR_CHALLENGES[mechanism.name]
        # The session survives the refusal: a valid token still works on it.
        good = make(user, oauth.introspection.issue(user))
        assert (await smtp.auth(good.name, good))[0] == 235
    assert not _leaks(
        _secrets_of(token, mechanism), str(caught.value).encode(), repr(caught.value).encode()
    )


@pytest.mark.feature("OAuth: no token in any log")
@MECHANISMS
async def test_no_token_appears_in_server_logs_transcript_or_errors(
    servers: Servers,
    oauth: OAuthStack,
    ca_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    make: MechanismFactory,
) -> None:
    """One accepted and one refused token: neither is in Postfix's or Dovecot's logs, in
    asmtp's debug transcript nor in the exception."""
    user = servers.address("user")
    good = make(user, good_token := oauth.introspection.issue(user))
    bad = make(user, bad_token := oauth.introspection.issue(user))
    oauth.introspection.revoke(bad_token)
    caplog.set_level(logging.DEBUG, logger="asmtp")
    ended = _kit.log_count(servers.logs["postfix"], _SESSION_END)
    async with submission(servers) as smtp:
        await smtp.starttls(context=ca_context)  # and EHLO again
        with pytest.raises(asmtp.SMTPAuthenticationError) as caught:
            await smtp.auth(bad.name, bad)
        assert (await smtp.auth(good.name, good))[0] == 235
    secrets = _secrets_of(good_token, good) + _secrets_of(bad_token, bad)
    logs = [servers.logs["postfix"], servers.logs["dovecot"], *oauth.logs.values()]
    # Postfix logs the session's end once the client is gone: wait for it, then read all.
    await _kit.log_grows(servers.logs["postfix"], _SESSION_END, ended)
    texts = await _kit.read_logs(*logs)
    assert any(b"xoauth2" in t.lower() or b"oauthbearer" in t.lower() for t in texts)
    transcript = "\n".join(_transcript(caplog)).encode()
    assert b"AUTH " in transcript
    assert not _leaks(
        secrets, *texts, transcript, str(caught.value).encode(), repr(caught.value).encode()
    )
