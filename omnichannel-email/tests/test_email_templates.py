"""The answer's bodies: the sandboxed Jinja templates (layout, signature, per-message
templates with variables, the business's own folder first), the agent's text escaped and
never evaluated, and template errors failing the message with ``template_error``; through
the real server and the rendering itself."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from omnichannel_email.templates import Link, MessageTemplate, message_template, render_bodies
from smtp_server import FROM_ADDRESS, FROM_NAME, SmtpServer

from omnichannel_core.channel import SendFailed

SEND = "/api/channels/email/messages"
WAIT = {"Prefer": "wait=10"}
_numbers = itertools.count(1)


def render(text: str | None, templates_dir: Path | None = None, **options):
    return render_bodies(
        text,
        subject="Order 1042",
        from_address=FROM_ADDRESS,
        from_name=FROM_NAME,
        templates_dir=templates_dir,
        **options,
    )


def folder_with(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return tmp_path


def test_text_is_escaped_into_paragraphs_and_line_breaks():
    """HTML: the text escaped, a paragraph per blank line, a <br> per newline; text: as
    typed, then the signature after "-- "."""
    bodies = render("Dear <Ana> & co,\nline two\n\n\nnew paragraph")
    assert "<p>Dear &lt;Ana&gt; &amp; co,<br>\nline two</p>\n<p>new paragraph</p>" in bodies.html
    assert bodies.text.startswith("Dear <Ana> & co,\nline two\n\n\nnew paragraph\n")
    assert bodies.text.endswith(f"\n-- \n{FROM_NAME}\n")
    assert f">{FROM_NAME}</p>" in bodies.html
    assert "<title>Order 1042</title>" in bodies.html


@pytest.mark.parametrize(
    "text",
    [
        "{{ 7 * 7 }}",
        "{% for i in range(3) %}x{% endfor %}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{# comment #}",
        "{{ content }}",
    ],
)
def test_text_is_never_evaluated(text: str):
    """Template syntax in the text, sandbox escapes included, comes out as typed."""
    bodies = render(text)
    assert text in bodies.text
    assert str(escape_html(text)) in bodies.html


def escape_html(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def test_links_to_media_not_kept_are_listed():
    """Media sent as a URL the media store does not keep go as links, in both bodies."""
    bodies = render("See below", links=(Link("invoice.pdf", "https://cdn.test/a?x=1&y=2"),))
    assert "- invoice.pdf: https://cdn.test/a?x=1&y=2" in bodies.text
    assert '<a href="https://cdn.test/a?x=1&amp;y=2">invoice.pdf</a>' in bodies.html


def test_business_templates_replace_the_built_in_ones(tmp_path: Path):
    """A signature.txt, signature.html or layout in EMAIL_TEMPLATES_DIR replaces the built-in
    one of the same name; the others stay built-in."""
    folder = folder_with(
        tmp_path,
        {
            "signature.txt": "\n-- \nThe {{ from_name }} team\n",
            "layout.html": "<main>{{ content }}</main>{% include 'signature.html' %}",
        },
    )
    bodies = render("Hi", folder)
    assert bodies.text.endswith(f"-- \nThe {FROM_NAME} team\n")
    assert bodies.html.startswith("<main><p>Hi</p></main>")
    assert f">{FROM_NAME}</p>" in bodies.html  # the built-in signature.html


def test_message_template_with_variables(tmp_path: Path):
    """A message template (messages/<name>.txt and .html) is rendered with its variables,
    HTML-escaped in the .html, inside the layout; the agent's text is the variable text."""
    folder = folder_with(
        tmp_path,
        {
            "messages/shipped.txt": "Order {{ order }} left with {{ carrier }}.\n{{ text }}",
            "messages/shipped.html": "<p>Order <b>{{ order }}</b> ({{ carrier }})</p>",
        },
    )
    template = MessageTemplate("shipped", {"order": "1042", "carrier": "<DHL>"})
    bodies = render("Thanks!", folder, template=template)
    assert bodies.text.startswith("Order 1042 left with <DHL>.\nThanks!")
    assert "<p>Order <b>1042</b> (&lt;DHL&gt;)</p>" in bodies.html
    assert bodies.text.endswith(f"-- \n{FROM_NAME}\n")


def test_message_template_in_one_form_gives_the_other(tmp_path: Path):
    """With only messages/<name>.txt, the HTML is its text escaped; with only .html, the
    text is the HTML's text."""
    folder = folder_with(
        tmp_path,
        {
            "messages/only_text.txt": "Total: {{ total }} <EUR>",
            "messages/only_html.html": "<p>Total: <b>{{ total }}</b></p><script>x()</script>",
        },
    )
    from_text = render("", folder, template=MessageTemplate("only_text", {"total": "5"}))
    assert "<p>Total: 5 &lt;EUR&gt;</p>" in from_text.html
    from_html = render("", folder, template=MessageTemplate("only_html", {"total": "5"}))
    assert from_html.text.startswith("Total: 5\n")
    assert "x()" not in from_html.text


@pytest.mark.parametrize(
    ("files", "name", "variables", "expected"),
    [
        ({}, "missing", {}, "no template messages/missing.txt or messages/missing.html"),
        ({"messages/t.txt": "Hi {{ name }}"}, "t", {}, "'name' is undefined"),
        ({"messages/t.txt": "{{ ''.__class__.__mro__ }}"}, "t", {}, "unsafe"),
        ({"messages/t.txt": "{% if %}"}, "t", {}, "messages/t.txt, line 1"),
        ({"messages/t.txt": "{{ 1 / n }}"}, "t", {"n": 0}, "ZeroDivisionError"),
    ],
)
def test_template_errors_fail_with_template_error(tmp_path, files, name, variables, expected):
    """A message template that is missing, uses a variable nobody gave, reaches outside the
    sandbox, does not parse or fails: SendFailed template_error, not retried, saying why."""
    folder = folder_with(tmp_path, files)
    with pytest.raises(SendFailed) as raised:
        render("x", folder, template=MessageTemplate(name, variables))
    assert raised.value.code == "template_error"
    assert not raised.value.retryable
    assert expected in raised.value.message


@pytest.mark.parametrize(
    "email",
    [
        {"template": "../layout"},
        {"template": "a/b"},
        {"template": ""},
        {"template": 5},
        {"template": "ok", "variables": ["not", "an", "object"]},
    ],
)
def test_malformed_template_metadata_is_refused(email):
    """A template name that is not a plain name (no path), or variables that are not an
    object: template_error before anything is rendered."""
    with pytest.raises(SendFailed) as raised:
        message_template(email)
    assert raised.value.code == "template_error"


# through the real server ------------------------------------------------------------------


def unique_address() -> str:
    return f"templated{next(_numbers)}.{time.monotonic_ns()}@example.org"


@pytest.fixture
def client(email_server):
    with email_server.client() as client:
        yield client


def test_message_template_through_the_server(client, smtp: SmtpServer):
    """A send naming metadata.email.template with variables: the mail's bodies are that
    template (from EMAIL_TEMPLATES_DIR/messages) rendered with them, in the layout."""
    to = unique_address()
    email = {
        "subject": "Order 1042",
        "template": "order_shipped",
        "variables": {"order": "1042", "carrier": "DHL & co"},
    }
    response = client.post(
        SEND, json={"to": to, "text": "Thanks!", "metadata": {"email": email}}, headers=WAIT
    )
    assert response.status_code == 201, response.text
    [mail] = smtp.wait_for(to)
    text = mail.body("plain")
    html = mail.body("html")
    assert text.startswith("Order 1042 left with DHL & co.\nThanks!")
    assert "<p>Order <b>1042</b> left with DHL &amp; co.</p>" in html


@pytest.mark.parametrize(
    ("name", "variables", "expected"),
    [
        ("needs_name", {}, "'name' is undefined"),
        ("escape_attempt", {}, "unsafe"),
        ("no_such_template", {}, "no template"),
    ],
)
def test_template_error_through_the_server(client, smtp: SmtpServer, name, variables, expected):
    """A template that fails: the message is failed at its first attempt with
    error_code template_error (422 to a caller who waited), and nothing is sent."""
    to = unique_address()
    email = {"template": name, "variables": variables}
    response = client.post(
        SEND, json={"to": to, "text": "x", "metadata": {"email": email}}, headers=WAIT
    )
    assert response.status_code == 422, response.text
    stored = response.json()["stored_message"]
    assert (stored["status"], stored["error_code"], stored["attempts"]) == (
        "failed",
        "template_error",
        1,
    )
    assert expected in stored["error_message"]
    assert smtp.mails_to(to) == []
