"""The template: placeholders in headers and text parts, rendered safely, attachments once."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from asmtp.campaign import RenderError, Template, TemplateError

MESSAGE_ID = "<c1.r1@example.org>"


def _parse(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _text(part: object) -> str:
    """A text part's content with LF line endings (the parser keeps CRLF)."""
    content = part.get_content()  # type: ignore[attr-defined]
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def _template(text: str, **options: object) -> Template:
    return Template(text.encode(), name="t.eml", **options)  # type: ignore[arg-type]


def test_headers_and_body_are_rendered_with_the_row_and_the_envelope_follows_them() -> None:
    template = _template(
        "From: Shop <shop@example.org>\nTo: {{ address(name, email) }}\n"
        "Cc: {{ manager }}\nBcc: archive@example.org\nSubject: Hello {{ name }}\n\n"
        "Dear {{ name }},\nyour code is {{ code }}.\n"
    )
    fields = {
        "name": "O'Brien, Pat",
        "email": "pat@example.com",
        "manager": "m@example.com",
        "code": 7,
    }
    outgoing = template.render(fields, message_id=MESSAGE_ID)
    assert outgoing.from_addr == "shop@example.org"
    assert outgoing.to_addrs == ("pat@example.com", "m@example.com", "archive@example.org")
    assert isinstance(outgoing.msg, bytes)
    message = _parse(outgoing.msg)
    assert message["To"].addresses[0].display_name == "O'Brien, Pat"
    assert message["Subject"] == "Hello O'Brien, Pat"
    assert message["Message-ID"] == MESSAGE_ID and message["Date"]
    assert "Bcc" not in message  # a recipient, never shown
    assert _text(message) == "Dear O'Brien, Pat,\nyour code is 7.\n"
    assert b"\r\n" in outgoing.msg and b"\n" not in outgoing.msg.replace(b"\r\n", b"")


def test_to_comes_from_the_recipient_and_from_from_the_sender_when_the_template_has_none() -> None:
    outgoing = _template("Subject: hi\n\nhi\n").render(
        {}, message_id=MESSAGE_ID, sender="news@example.org", recipient="ada@example.com"
    )
    message = _parse(outgoing.msg)  # type: ignore[arg-type]
    assert (message["From"], message["To"]) == ("news@example.org", "ada@example.com")
    assert (outgoing.from_addr, outgoing.to_addrs) == ("news@example.org", ("ada@example.com",))


def test_html_parts_escape_the_row_and_text_parts_do_not() -> None:
    source = EmailMessage()
    source["From"] = "shop@example.org"
    source["To"] = "{{ email }}"
    source["Subject"] = "Hi {{ name }}"
    source.set_content("Hi {{ name }}\n")
    source.add_alternative("<p>Hi {{ name }}</p>\n", subtype="html")
    outgoing = Template.from_message(source).render(
        {"name": "<script>x</script> Jürgen", "email": "j@example.com"}, message_id=MESSAGE_ID
    )
    message = _parse(outgoing.msg)  # type: ignore[arg-type]
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert _text(plain) == "Hi <script>x</script> Jürgen\n"
    assert _text(html) == "<p>Hi &lt;script&gt;x&lt;/script&gt; Jürgen</p>\n"
    assert message["Subject"] == "Hi <script>x</script> Jürgen"
    assert isinstance(outgoing.msg, bytes)
    assert b"=?utf-8?" in outgoing.msg.split(b"\r\n\r\n")[0]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"email": "a@example.com"}, "header Subject: 'name' is undefined"),
        ({"email": "a@example.com", "name": "x\r\nBcc: evil@example.net"}, "line break"),
        ({"email": "a@example.com", "name": "x\nBcc: evil@example.net"}, "line break"),
        ({"email": "not an address", "name": "x"}, "To: not an address"),
        ({"email": "a@example.com", "name": "x", "obj": 1}, None),
    ],
)
def test_a_row_that_cannot_be_rendered_is_an_error_of_that_row(
    fields: dict[str, object], error: str | None
) -> None:
    template = _template("From: s@example.org\nTo: {{ email }}\nSubject: {{ name }}\n\nhi\n")
    if error is None:
        template.render(fields, message_id=MESSAGE_ID)
        return
    with pytest.raises(RenderError, match=error):
        template.render(fields, message_id=MESSAGE_ID)


def test_the_sandbox_refuses_reaching_into_python() -> None:
    template = _template("From: s@example.org\nTo: a@example.com\n\n{{ name.__class__.__mro__ }}\n")
    with pytest.raises(RenderError):
        template.render({"name": "x"}, message_id=MESSAGE_ID)


def test_attachments_are_read_once_and_sent_with_every_message(tmp_path: Path) -> None:
    attachment = tmp_path / "terms.pdf"
    attachment.write_bytes(b"%PDF-1.4 " + bytes(range(256)))
    template = _template(
        "From: s@example.org\nTo: {{ email }}\n\nSee attached.\n", attachments=[attachment]
    )
    attachment.unlink()  # read once, when the template was made
    for address in ("a@example.com", "b@example.com"):
        message = _parse(template.render({"email": address}, message_id=MESSAGE_ID).msg)  # type: ignore[arg-type]
        parts = list(message.iter_attachments())
        assert [p.get_filename() for p in parts] == ["terms.pdf"]
        assert parts[0].get_content() == b"%PDF-1.4 " + bytes(range(256))


def test_template_variables_and_errors() -> None:
    template = _template(
        "From: s@example.org\nTo: {{ email }}\nSubject: {{ name|upper }}\n\n{% for t in tags %}{{ t }}{% endfor %}\n"
    )
    assert template.variables == {"email", "name", "tags"}
    with pytest.raises(TemplateError, match=r"t.eml: header Subject, line 1: unexpected end"):
        _template("From: s@example.org\nSubject: {{ name\n\nhi\n")
    with pytest.raises(TemplateError, match="empty"):
        _template("")
    with pytest.raises(TemplateError, match="cannot read"):
        Template.from_file("/nonexistent/t.eml")


def test_a_long_non_ascii_body_goes_as_quoted_printable() -> None:
    body = "é" * 600 + "\n" + "x" * 1200 + "\n"
    outgoing = _template("From: s@example.org\nTo: a@example.com\n\n" + body).render(
        {}, message_id=MESSAGE_ID
    )
    data = outgoing.msg
    assert isinstance(data, bytes)
    assert b"Content-Transfer-Encoding: quoted-printable" in data
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert _text(_parse(data)) == body
