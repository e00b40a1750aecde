"""An answer's plain text and HTML bodies, rendered from Jinja templates in a sandbox.

Every answer is a layout (``layout.txt``, ``layout.html``) around its content, ending with a
signature (``signature.txt``, ``signature.html``). The built-in templates are in this
package's ``templates/`` folder; a file of the same name in ``EMAIL_TEMPLATES_DIR`` replaces
one. A message may instead name a template of its own, ``messages/<name>.txt`` and/or
``messages/<name>.html`` in that folder, with variables::

    {"text": "...", "metadata": {"email": {"subject": "Order 1042",
        "template": "order_shipped", "variables": {"order": "1042"}}}}

With only one of the two, the other is made from it: the text escaped into HTML, or the
HTML's text as an inbound mail's is read (:func:`omnichannel_email.html_text.html_to_text`).

What an agent typed is data, never template source: it reaches a template only as the
variable ``content`` (or ``text`` in a message template), escaped into the HTML (a blank line
starts a paragraph, a newline is a ``<br>``), so no ``{{ ... }}`` in a message is ever
evaluated. Templates run in Jinja's immutable sandbox with undefined variables as errors: a
template that is missing, refers to a variable nobody gave, or reaches outside the sandbox
fails the message with ``template_error`` (not retried: sending again renders the same).

The variables every template sees: ``content`` (the body: text in ``.txt`` templates, HTML
in ``.html`` ones), ``subject``, ``from_name``, ``from_address`` and ``links`` (media sent as
links: ``name``, ``url``); a message template sees its ``variables`` and ``text`` (the
agent's text, maybe empty) instead of ``content``, the names above taking precedence.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import attrs
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from omnichannel_core.channel import SendFailed
from omnichannel_email.html_text import html_to_text

BUILT_IN_TEMPLATES = Path(__file__).parent / "templates"
MESSAGE_TEMPLATES = "messages"
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
TEMPLATE_ERROR = "template_error"
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


@attrs.frozen
class Bodies:
    """The two alternatives of an answer."""

    text: str
    html: str


@attrs.frozen
class Link:
    """Media that goes as a link (an URL the media store does not keep)."""

    name: str
    url: str


@attrs.frozen
class MessageTemplate:
    """A message's own template: its name (``messages/<name>.txt|.html``) and variables."""

    name: str
    variables: dict[str, Any] = attrs.field(factory=dict)


def template_error(detail: str) -> SendFailed:
    return SendFailed(f"email template: {detail}", code=TEMPLATE_ERROR)


def message_template(email: dict[str, Any]) -> MessageTemplate | None:
    """The template ``metadata["email"]`` names, or None; SendFailed (``template_error``)
    for a malformed name or variables."""
    name = email.get("template")
    if name is None:
        return None
    if not isinstance(name, str) or not TEMPLATE_NAME.match(name):
        raise template_error(
            "metadata.email.template must be a name of letters, digits, '-' and '_'"
        )
    variables = email.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(key, str) for key in variables):
        raise template_error("metadata.email.variables must be an object")
    return MessageTemplate(name, dict(variables))


@functools.lru_cache(maxsize=8)
def environment(templates_dir: Path | None) -> ImmutableSandboxedEnvironment:
    """The sandbox for one templates folder (the business's first, then the built-in ones),
    made once per folder: Jinja keeps each compiled template, and reloads one whose file
    changed."""
    folders = [str(BUILT_IN_TEMPLATES)]
    if templates_dir is not None:
        folders.insert(0, str(templates_dir))
    return ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html",),
            disabled_extensions=("txt",),
            default_for_string=True,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def text_to_html(text: str) -> Markup:
    """Plain text as HTML that shows it as typed: escaped, a paragraph per blank line, a
    ``<br>`` per newline."""
    paragraphs = [part for part in PARAGRAPH_BREAK.split(text.strip()) if part]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in part.split("\n")))
        for part in paragraphs
    )


def _failure(error: Exception, name: str) -> SendFailed:
    """``template_error`` saying what went wrong in the template ``name``."""
    if isinstance(error, jinja2.TemplateNotFound):
        return template_error(f"no template {error.name!r}")
    if isinstance(error, jinja2.TemplateSyntaxError):
        return template_error(f"{error.name or name}, line {error.lineno}: {error.message}")
    if isinstance(error, jinja2.TemplateError):  # undefined, or outside the sandbox
        return template_error(f"{name}: {error.message or type(error).__name__}")
    return template_error(f"{name}: {type(error).__name__}: {error}")


def _render(env: ImmutableSandboxedEnvironment, name: str, variables: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(variables)
    except Exception as error:  # a filter given the wrong type, a division by zero...
        raise _failure(error, name) from None


def _exists(env: ImmutableSandboxedEnvironment, name: str) -> bool:
    try:
        env.get_template(name)
    except jinja2.TemplateNotFound:
        return False
    except Exception as error:  # it exists, and does not compile
        raise _failure(error, name) from None
    return True


def _message_contents(
    env: ImmutableSandboxedEnvironment, template: MessageTemplate, text: str, base: dict[str, Any]
) -> tuple[str, Markup]:
    """The text and HTML content a message template gives: ``.txt`` and ``.html`` when both
    exist; with one only, the other made from it (the text escaped into HTML, or the HTML's
    text as an inbound mail's is read)."""
    variables = {**template.variables, "text": text, **base}
    stem = f"{MESSAGE_TEMPLATES}/{template.name}"
    has_text, has_html = _exists(env, f"{stem}.txt"), _exists(env, f"{stem}.html")
    if not has_text and not has_html:
        raise template_error(f"no template {stem}.txt or {stem}.html")
    content_text = _render(env, f"{stem}.txt", variables) if has_text else None
    content_html = _render(env, f"{stem}.html", variables) if has_html else None
    if content_html is None:
        return content_text or "", text_to_html(content_text or "")
    if content_text is None:
        content_text = html_to_text(content_html).text
    return content_text, Markup(content_html)  # noqa: S704 (the business's own template)


def render_bodies(
    text: str | None,
    *,
    subject: str,
    from_address: str,
    from_name: str | None,
    templates_dir: Path | None,
    template: MessageTemplate | None = None,
    links: tuple[Link, ...] = (),
) -> Bodies:
    """The plain text and HTML of an answer: ``text`` (or ``template``'s rendering) inside
    the layout; SendFailed (``template_error``) when a template fails."""
    env = environment(templates_dir)
    base: dict[str, Any] = {
        "subject": subject,
        "from_name": from_name,
        "from_address": from_address,
        "links": [attrs.asdict(link) for link in links],
    }
    if template is not None:
        content_text, content_html = _message_contents(env, template, text or "", base)
    else:
        content_text, content_html = (text or "").strip(), text_to_html(text or "")
    return Bodies(
        text=_render(env, "layout.txt", {**base, "content": content_text.strip("\n")}),
        html=_render(env, "layout.html", {**base, "content": content_html}),
    )
