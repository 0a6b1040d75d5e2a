"""The assertion helpers pass on a match and, on a mismatch, say what differed and how."""

from __future__ import annotations

import pytest

from asmtp.testing import ReceivedMessage, assert_nothing_sent, assert_recipients, assert_sent


def received(
    to: tuple[str, ...] = ("ada@example.com",),
    subject: str = "Welcome",
    body: str = "Hello Ada",
    sender: str = "app@example.org",
    attachment: str | None = None,
) -> ReceivedMessage:
    head = f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
    if attachment is None:
        raw = f"{head}Content-Type: text/plain\r\n\r\n{body}\r\n"
    else:
        raw = (
            f"{head}Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
            f"Content-Type: text/plain\r\n\r\n{body}\r\n--B\r\n"
            f'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="{attachment}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--B--\r\n"
        )
    return ReceivedMessage(mail_from=sender, rcpt_tos=to, raw=raw.encode())


def test_assert_sent_returns_the_one_match() -> None:
    welcome = received()
    other = received(to=("bob@example.com",), subject="Receipt", attachment="receipt.pdf")
    assert assert_sent([welcome, other], to=["ada@example.com"], subject="Welcome") is welcome
    found = assert_sent(
        [welcome, other],
        sender="app@example.org",
        to=["bob@example.com"],
        text_contains="Hello",
        headers={"Subject": "Receipt"},
        attachments=["receipt.pdf"],
    )
    assert found is other
    assert found.attachments == {"receipt.pdf": b"%PDF"}
    assert found.mime_tree() == "multipart/mixed(text/plain, application/pdf)"


def test_a_mismatch_lists_every_difference_of_every_message() -> None:
    messages = [received(to=("ada@example.com", "eve@example.com"), subject="Welcome!")]
    with pytest.raises(AssertionError) as failure:
        assert_sent(messages, to=["ada@example.com", "bob@example.com"], subject="Welcome")
    assert str(failure.value) == (
        "no message matches (to=['ada@example.com', 'bob@example.com'], subject='Welcome'); "
        "received 1:\n"
        f"  #1 {messages[0].summary()}\n"
        "      to: expected ['ada@example.com', 'bob@example.com'], "
        "got ['ada@example.com', 'eve@example.com'] "
        "(missing ['bob@example.com'], unexpected ['eve@example.com'])\n"
        "      subject: expected 'Welcome', got 'Welcome!'"
    )


def test_long_text_differences_are_shown_as_a_unified_diff() -> None:
    long_subject = "A" * 300
    with pytest.raises(AssertionError) as failure:
        assert_sent([received(subject=long_subject + "B")], subject=long_subject)
    lines = [line.strip() for line in str(failure.value).splitlines()]
    at = lines.index("subject differs:")
    assert lines[at + 1 : at + 4] == ["--- expected", "+++ received", "@@ -1 +1 @@"]
    assert lines[at + 4 : at + 6] == [f"-{long_subject}", f"+{long_subject}B"]


def test_missing_text_and_headers_are_named() -> None:
    with pytest.raises(AssertionError) as failure:
        assert_sent([received()], text_contains="Goodbye", headers={"Reply-To": "x@example.org"})
    message = str(failure.value)
    assert "text does not contain 'Goodbye'; text: 'Hello Ada\\n'" in message
    assert "header Reply-To: expected 'x@example.org', got none" in message


def test_several_matches_are_an_error_listing_them() -> None:
    with pytest.raises(AssertionError, match=r"2 messages match .*expected exactly one"):
        assert_sent([received(), received()], subject="Welcome")


def test_assert_recipients_compares_all_envelopes_together() -> None:
    messages = [received(to=("a@example.com",)), received(to=("b@example.com", "c@example.com"))]
    assert_recipients(messages, ["c@example.com", "a@example.com", "b@example.com"])
    with pytest.raises(AssertionError) as failure:
        assert_recipients(messages, ["a@example.com", "b@example.com", "d@example.com"])
    assert "(missing ['d@example.com'], unexpected ['c@example.com'])" in str(failure.value)


def test_assert_nothing_sent() -> None:
    assert_nothing_sent([])
    with pytest.raises(AssertionError, match=r"expected no message, received 1:\n  from=<app"):
        assert_nothing_sent([received()])
