"""The SASL mechanisms in ``asmtp.auth`` as pure objects: exact bytes, no server, no loop.

Expected values come from the RFCs' own examples (RFC 2195 §2, RFC 4616 §2, RFC 7628
§4.1, RFC 7677 §3) and Google's XOAUTH2 documentation, not from our code.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from typing import Final

import pytest

from asmtp.auth import (
    SCRAM_MAX_ITERATIONS,
    SCRAM_MIN_ITERATIONS,
    CramMD5,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    SASLError,
    ScramSHA256,
    Secret,
    XOAuth2,
)
from secure._scram_server import ScramServer

# RFC 7677 §3
SCRAM_CLIENT_NONCE: Final = "rOprNGfwEbeRWgbNEkqO"
SCRAM_SERVER_NONCE: Final = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SCRAM_SALT: Final = "W22ZaJ0SNY7soEsUEjb6gQ=="
SCRAM_CLIENT_FIRST: Final = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SCRAM_SERVER_FIRST: Final = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
SCRAM_CLIENT_FINAL: Final = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SCRAM_SERVER_FINAL: Final = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc7677_client() -> ScramSHA256:
    return ScramSHA256("user", "pencil", nonce=SCRAM_CLIENT_NONCE)


# PLAIN, LOGIN, CRAM-MD5


@pytest.mark.parametrize(
    ("authzid", "expected"),
    [("", b"\0tim\0tanstaaftanstaaf"), ("admin", b"admin\0tim\0tanstaaftanstaaf")],
)
def test_plain_sends_authzid_user_and_password_separated_by_nul(
    authzid: str, expected: bytes
) -> None:
    mechanism = Plain("tim", "tanstaaftanstaaf", authzid)
    assert mechanism.name == "PLAIN"
    assert mechanism.initial_response() == expected
    assert mechanism.respond(b"") == expected  # the answer to the server's empty prompt
    mechanism.success(None)


def test_plain_encodes_non_ascii_credentials_as_utf8() -> None:
    assert Plain("jörg", "pässword").initial_response() == "\0jörg\0pässword".encode()


def test_login_sends_the_user_then_the_password_after_an_initial_response() -> None:
    mechanism = Login("tim", "tanstaaftanstaaf")
    assert mechanism.name == "LOGIN"
    assert mechanism.initial_response() == b"tim"
    assert mechanism.respond(b"Password:") == b"tanstaaftanstaaf"


def test_login_answers_both_prompts_without_an_initial_response() -> None:
    mechanism = Login("tim", "tanstaaftanstaaf")
    assert mechanism.respond(b"Username:") == b"tim"
    assert mechanism.respond(b"Password:") == b"tanstaaftanstaaf"
    with pytest.raises(SASLError):
        mechanism.respond(b"Something else:")


def test_cram_md5_matches_the_rfc_2195_example() -> None:
    mechanism: Mechanism = CramMD5("tim", "tanstaaftanstaaf")
    assert mechanism.name == "CRAM-MD5"
    assert mechanism.initial_response() is None  # it waits for the server's challenge
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    assert mechanism.respond(challenge) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_cram_md5_refuses_an_empty_challenge() -> None:
    with pytest.raises(SASLError):
        CramMD5("tim", "tanstaaftanstaaf").respond(b"")


# XOAUTH2, OAUTHBEARER


def test_xoauth2_matches_googles_documented_message() -> None:
    token = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    mechanism = XOAuth2("someuser@example.com", token)
    assert mechanism.name == "XOAUTH2"
    assert mechanism.initial_response() == (
        b"user=someuser@example.com\x01auth=Bearer " + token.encode() + b"\x01\x01"
    )
    assert base64.b64encode(mechanism.initial_response()) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )
    # The failure path: the server's JSON error is answered with an empty response.
    assert mechanism.respond(b'{"status":"401","schemes":"bearer"}') == b""


def test_oauthbearer_matches_the_rfc_7628_example() -> None:
    token = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
    mechanism = OAuthBearer("user@example.com", token, host="server.example.com", port=143)
    assert mechanism.name == "OAUTHBEARER"
    assert mechanism.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )
    # RFC 7628 §3.2.3: the error challenge is answered with a single %x01.
    assert mechanism.respond(b'{"status":"invalid_token"}') == b"\x01"


def test_oauthbearer_escapes_comma_and_equals_in_the_user_name() -> None:
    # RFC 7628 §3.1 uses RFC 5801's saslname: "," is "=2C" and "=" is "=3D".
    message = OAuthBearer("a,b=c", "t").initial_response()
    assert message == b"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01"


# SCRAM-SHA-256


def test_scram_sha256_matches_the_rfc_7677_test_vector() -> None:
    mechanism = rfc7677_client()
    assert mechanism.name == "SCRAM-SHA-256"
    assert mechanism.initial_response() == SCRAM_CLIENT_FIRST
    assert mechanism.respond(SCRAM_SERVER_FIRST) == SCRAM_CLIENT_FINAL
    assert mechanism.respond(SCRAM_SERVER_FINAL) == b""
    mechanism.success(None)  # the server proved itself


def test_scram_sha256_accepts_the_server_signature_with_the_success_reply() -> None:
    mechanism = rfc7677_client()
    mechanism.initial_response()
    mechanism.respond(SCRAM_SERVER_FIRST)
    mechanism.success(SCRAM_SERVER_FINAL)


def test_scram_sha256_escapes_comma_and_equals_in_the_user_name() -> None:
    mechanism = ScramSHA256("a,b=c", "pencil", nonce="abc")
    assert mechanism.initial_response() == b"n,,n=a=2Cb=3Dc,r=abc"


def test_scram_sha256_makes_a_fresh_nonce_each_time() -> None:
    first = ScramSHA256("user", "pencil").initial_response()
    assert first != ScramSHA256("user", "pencil").initial_response()
    assert len(first) >= len(b"n,,n=user,r=") + 16


def test_the_test_scram_server_reproduces_the_rfc_7677_test_vector() -> None:
    """The independent server used end to end in test_auth agrees with the RFC too."""
    server = ScramServer(
        {"user": "pencil"}, salt=base64.b64decode(SCRAM_SALT), server_nonce=SCRAM_SERVER_NONCE
    )
    assert server.server_first(SCRAM_CLIENT_FIRST) == SCRAM_SERVER_FIRST
    assert server.client_proof_ok(SCRAM_CLIENT_FINAL)
    assert server.server_final() == SCRAM_SERVER_FINAL


BAD_SERVER_FIRST: Final[dict[str, bytes]] = {
    "nonce-not-extending-ours": b"r=someoneElsesNonce123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "nonce-equal-to-ours": b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "nonce-missing": b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "iterations-4095": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=4095"),
    "iterations-1": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=1"),
    "iterations-missing": SCRAM_SERVER_FIRST.replace(b",i=4096", b""),
    "iterations-not-a-number": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=4096x"),
    "iterations-above-the-bound": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=65537"),
    "iterations-huge": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=99999999999999999999"),
    "iterations-5000-digits": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=" + b"9" * 5000),
    "iterations-negative": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=-4096"),
    "iterations-leading-zero": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=04096"),
    "iterations-whitespace": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i= 4096"),
    "iterations-fullwidth-digits": SCRAM_SERVER_FIRST.replace(
        b"i=4096", "i=\uff14\uff10\uff19\uff16".encode()
    ),
    "iterations-superscript": SCRAM_SERVER_FIRST.replace(b"i=4096", "i=4096²".encode()),
    "iterations-empty": SCRAM_SERVER_FIRST.replace(b"i=4096", b"i="),
    "salt-empty": SCRAM_SERVER_FIRST.replace(b"s=W22ZaJ0SNY7soEsUEjb6gQ==", b"s="),
    "nonce-with-a-space": SCRAM_SERVER_FIRST.replace(b"hvYD", b"hv D"),
    "nonce-not-ascii": SCRAM_SERVER_FIRST.replace(b"hvYD", "hvYé".encode()),
    "mandatory-extension": b"m=ext," + SCRAM_SERVER_FIRST,
    "salt-not-base64": SCRAM_SERVER_FIRST.replace(b"s=W22Z", b"s=%%%%"),
    "malformed": b"this is not scram",
    "empty": b"",
    "not-utf8": b"r=\xff\xfe",
}


@pytest.mark.parametrize("server_first", BAD_SERVER_FIRST.values(), ids=BAD_SERVER_FIRST)
def test_scram_sha256_refuses_a_bad_server_first_message(server_first: bytes) -> None:
    """SASLError only: never OverflowError, ValueError or UnicodeEncodeError."""
    mechanism = rfc7677_client()
    mechanism.initial_response()
    with pytest.raises(SASLError):
        mechanism.respond(server_first)


def test_scram_sha256_bounds_the_iteration_count_at_cyrus_sasls_limit_by_default() -> None:
    assert rfc7677_client().max_iterations == SCRAM_MAX_ITERATIONS == 65536
    assert SCRAM_MIN_ITERATIONS == 4096
    at_the_bound = SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=65536")
    assert rfc7677_client().respond(at_the_bound).startswith(b"c=biws,r=")


def test_scram_sha256_max_iterations_is_the_callers_to_raise() -> None:
    server_first = SCRAM_SERVER_FIRST.replace(b"i=4096", b"i=70000")
    with pytest.raises(SASLError, match=r"above max_iterations \(65536\)"):
        rfc7677_client().respond(server_first)
    mechanism = ScramSHA256("user", "pencil", nonce=SCRAM_CLIENT_NONCE, max_iterations=70000)
    assert mechanism.respond(server_first).startswith(b"c=biws,r=")


@pytest.mark.parametrize("bound", [0, 4095, -1])
def test_scram_sha256_max_iterations_below_the_minimum_is_a_value_error(bound: int) -> None:
    with pytest.raises(ValueError, match="max_iterations"):
        ScramSHA256("user", "pencil", max_iterations=bound)


def test_scram_sha256_asks_for_its_derivation_to_run_off_the_event_loop() -> None:
    assert ScramSHA256("user", "pencil").blocking is True
    assert not hasattr(Plain("user", "pencil"), "blocking")


BAD_SERVER_FINAL: Final[dict[str, bytes]] = {
    "wrong-signature": b"v=" + base64.b64encode(b"\x00" * 32),
    "one-bit-flipped": b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    "server-error": b"e=invalid-proof",
    "signature-not-base64": b"v=%%%%",
    "no-signature": b"x=1",
}


@pytest.mark.parametrize("server_final", BAD_SERVER_FINAL.values(), ids=BAD_SERVER_FINAL)
@pytest.mark.parametrize("delivered_with", ["challenge", "success"])
def test_scram_sha256_refuses_a_server_that_does_not_prove_it_knows_the_password(
    server_final: bytes, delivered_with: str
) -> None:
    mechanism = rfc7677_client()
    mechanism.initial_response()
    mechanism.respond(SCRAM_SERVER_FIRST)
    with pytest.raises(SASLError):
        if delivered_with == "challenge":
            mechanism.respond(server_final)
        else:
            mechanism.success(server_final)


@pytest.mark.parametrize("data", [None, b""])
def test_scram_sha256_success_without_any_server_signature_is_refused(data: bytes | None) -> None:
    mechanism = rfc7677_client()
    mechanism.initial_response()
    mechanism.respond(SCRAM_SERVER_FIRST)
    with pytest.raises(SASLError):
        mechanism.success(data)


# Secrets never show


PASSWORD: Final = "s3cret-pässword-4242"

MECHANISMS: Final[dict[str, Callable[[str | Secret], Mechanism]]] = {
    "PLAIN": lambda secret: Plain("tim", secret),
    "LOGIN": lambda secret: Login("tim", secret),
    "CRAM-MD5": lambda secret: CramMD5("tim", secret),
    "XOAUTH2": lambda secret: XOAuth2("tim", secret),
    "OAUTHBEARER": lambda secret: OAuthBearer("tim", secret),
    "SCRAM-SHA-256": lambda secret: ScramSHA256("tim", secret),
}


def _leaks(text: str) -> list[str]:
    forms = [PASSWORD, base64.b64encode(PASSWORD.encode()).decode(), repr(PASSWORD)[1:-1]]
    return [form for form in forms if form in text]


@pytest.mark.parametrize("wrap", [False, True], ids=["str", "Secret"])
@pytest.mark.parametrize("name", list(MECHANISMS))
def test_mechanism_repr_and_str_never_show_the_secret(name: str, wrap: bool) -> None:
    mechanism = MECHANISMS[name](Secret(PASSWORD) if wrap else PASSWORD)
    first = mechanism.initial_response()  # state after stepping must not show it either
    if name == "SCRAM-SHA-256":
        nonce = (first or b"").decode().rpartition("r=")[2]
        mechanism.respond(f"r={nonce}xyz,s={SCRAM_SALT},i=4096".encode())
    assert _leaks(repr(mechanism)) == []
    assert _leaks(str(mechanism)) == []
    assert mechanism.name == name


@pytest.mark.parametrize("name", list(MECHANISMS))
def test_a_mechanism_holding_a_secret_cannot_be_pickled(name: str) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(MECHANISMS[name](PASSWORD))


def test_secret_hides_its_value_but_reveals_it_on_request() -> None:
    secret = Secret(PASSWORD)
    assert _leaks(repr(secret)) == []
    assert _leaks(str(secret)) == []
    assert _leaks(f"{secret}") == []
    assert _leaks(repr([secret])) == []
    assert secret.reveal() == PASSWORD
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_secret_keeps_its_value_masked_so_attribute_dumps_do_not_show_it() -> None:
    """Tools that dump objects' attributes (frame-local capture) find only random bytes."""
    secret = Secret(PASSWORD)
    attributes = [getattr(secret, slot) for slot in Secret.__slots__]
    assert _leaks(repr(attributes)) == []
    assert all(PASSWORD.encode() not in value for value in attributes)
    assert Secret(secret).reveal() == PASSWORD  # a copy of another Secret
    assert Secret(PASSWORD)._masked != secret._masked  # a fresh pad each time


def test_secret_holds_a_lone_surrogate_but_refuses_to_encode_it_without_quoting_it() -> None:
    secret = Secret(PASSWORD + "\udcff")
    assert secret.reveal() == PASSWORD + "\udcff"
    assert Secret(PASSWORD).utf8() == PASSWORD.encode()
    with pytest.raises(ValueError, match="the token is not valid Unicode text") as caught:
        secret.utf8("token")
    assert caught.value.__context__ is None
    assert _leaks(repr(caught.value)) == []


@pytest.mark.parametrize("name", [name for name in MECHANISMS if name != "SCRAM-SHA-256"])
def test_a_secret_object_works_wherever_a_password_does(name: str) -> None:
    by_password, by_secret = MECHANISMS[name](PASSWORD), MECHANISMS[name](Secret(PASSWORD))
    assert by_password.initial_response() == by_secret.initial_response()
    assert by_password.respond(b"<1.2@x>") == by_secret.respond(b"<1.2@x>")


def test_scram_sha256_with_a_secret_object_matches_the_rfc_7677_test_vector() -> None:
    mechanism = ScramSHA256("user", Secret("pencil"), nonce=SCRAM_CLIENT_NONCE)
    assert mechanism.initial_response() == SCRAM_CLIENT_FIRST
    assert mechanism.respond(SCRAM_SERVER_FIRST) == SCRAM_CLIENT_FINAL
