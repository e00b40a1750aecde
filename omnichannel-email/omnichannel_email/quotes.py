"""What a reply repeats, found in its text: quoted history, signatures, and whether the
mail is a forward (whose content is kept whole).

- **Quoted history**: ``>`` lines wherever they are (top-posted, bottom-posted or
  interleaved), with the attribution line above them ("On <date>, <name> wrote:", and the
  French, German, Spanish, Italian, Dutch and Portuguese forms); and from the first
  Outlook-style marker to the end ("-----Original Message-----", a ``From:`` line followed
  by ``Sent:``/``To:``/``Subject:`` lines in any of those languages, an attribution line
  with no ``>`` lines after it). Outlook's HTML markers (``divRplyFwdMsg``) are found by
  :mod:`omnichannel_email.html_text`.
- **Signatures**: from the last ``-- `` line (RFC 3676) when at most
  :data:`SIGNATURE_MAX_LINES` lines follow it, and a trailing "Sent from my iPhone" or
  "Get Outlook for iOS".
- **Forwards**: a mail whose subject starts ``Fwd:``/``FW:`` (or ``TR:``, ``WG:``, ``RV:``,
  ``ENC:``), or whose forwarded-message marker comes before any quote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SIGNATURE_MAX_LINES = 15

_ATTRIBUTION = re.compile(
    r"\s*(?:"
    r"On\s.{1,300}?\swrote"
    r"|Le\s.{1,300}?\sa\s+écrit"
    r"|Am\s.{1,300}?\sschrieb\b[^:]{0,300}"
    r"|El\s.{1,300}?\sescribió"
    r"|Il\s.{1,300}?\sha\s+scritto"
    r"|Op\s.{1,300}?\sschreef\b[^:]{0,300}"
    r"|Em\s.{1,300}?\sescreveu"
    r"|\S.{0,200}?\s(?:wrote|a\s+écrit|schrieb|escribió|ha\s+scritto|schreef|escreveu)"
    r")\s*:\s*",
    re.IGNORECASE | re.DOTALL,
)
"""An attribution line: "On <date>, <name> <addr> wrote:" and its translations. The last
form (any "<name> wrote:") counts only right above quoted lines."""
_ATTRIBUTION_VERB = re.compile(
    r"wrote|écrit|schrieb|escribió|scritto|schreef|escreveu", re.IGNORECASE
)
"""Checked before :data:`_ATTRIBUTION`, which only a line with one of these can match."""
_DATED_ATTRIBUTION_START = re.compile(r"\s*(On|Le|Am|El|Il|Op|Em)\s", re.IGNORECASE)
_ORIGINAL_MESSAGE = re.compile(
    r"\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine"
    r"|Mensaje original|Messaggio originale|Oorspronkelijk bericht|Mensagem original"
    r"|Original Nachricht)\s*-{2,}\s*",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(
    r"\s*[*_]{0,2}(From|De|Von|Da|Van|Från|Fra|Od)[*_]{0,2}\s*:[*_]{0,2}\s*\S", re.IGNORECASE
)
_HEADER_OTHER = re.compile(
    r"\s*[*_]{0,2}(Sent|Date|To|Cc|Subject|Reply-To|Envoyé|À|Objet|Gesendet|An|Betreff"
    r"|Datum|Enviado|Para|Asunto|Fecha|Inviato|A|Oggetto|Data|Verzonden|Aan|Onderwerp"
    r"|Assunto|Skickat|Ämne|Till)[*_]{0,2}\s*:",
    re.IGNORECASE,
)
_FORWARD_MARKER = re.compile(
    r"\s*(-{3,}\s*(Forwarded message|Forwarded Message|Message transféré|Weitergeleitete"
    r" Nachricht|Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht|Mensagem"
    r" encaminhada)\s*-{3,}"
    r"|Begin forwarded message\s*:|Début du message réexpédié\s*:"
    r"|Anfang der weitergeleiteten Nachricht\s*:|Inicio del mensaje reenviado\s*:)\s*",
    re.IGNORECASE,
)
_FORWARD_SUBJECT = re.compile(r"\s*(\[[^\]]*\]\s*)?(fwd?|fw|tr|wg|rv|enc|doorst)\s*:", re.I)
_SEPARATOR = re.compile(r"\s*[_\-=*~]{3,}\s*")
_MOBILE_SIGNATURE = re.compile(
    r"\s*(Sent from my \S.{0,40}|Sent from (Mail|Outlook|Yahoo Mail|Gmail|AOL|Proton Mail)"
    r"\b.{0,40}|Get Outlook for (iOS|Android)\b.{0,60}|Envoyé de mon \S.{0,40}"
    r"|Von meinem \S.{0,40}gesendet|Enviado desde mi \S.{0,40}|Inviato da(l mio)? \S.{0,40}"
    r"|Verstuurd vanaf mijn \S.{0,40}|Verzonden (vanaf|met) \S.{0,40}"
    r"|Enviado do meu \S.{0,40})\s*",
    re.IGNORECASE,
)


def _is_quoted(line: str) -> bool:
    return line.lstrip(" ").startswith(">")


def _attribution_at(lines: Sequence[str], start: int, dated: bool) -> int | None:
    """The last line of an attribution starting at ``start`` (wrapped over up to three
    lines, as Gmail's plain text does), or None. ``dated``: only the "On <date>..." forms
    and their translations, with a digit in them (the date)."""
    if dated and not _DATED_ATTRIBUTION_START.match(lines[start]):
        return None
    joined = ""
    for end in range(start, min(start + 3, len(lines))):
        if end > start and not lines[end].strip():
            return None
        joined = f"{joined} {lines[end]}" if joined else lines[end]
        if len(joined) > 600:
            return None
        if (
            joined.rstrip().endswith(":")
            and _ATTRIBUTION_VERB.search(joined)
            and _ATTRIBUTION.fullmatch(joined)
        ):
            if dated and not any(char.isdigit() for char in joined):
                return None
            return end
    return None


def _next_text_line(lines: Sequence[str], index: int) -> int | None:
    for position in range(index, len(lines)):
        if lines[position].strip():
            return position
    return None


def _header_block_at(lines: Sequence[str], index: int) -> bool:
    """An Outlook-style header block starts at ``index``: a From line and at least two
    other header lines (Sent, To, Subject...) within the next six."""
    if not _HEADER_FROM.match(lines[index]):
        return False
    others = sum(1 for line in lines[index + 1 : index + 7] if _HEADER_OTHER.match(line))
    return others >= 2


def history_start(lines: Sequence[str]) -> int | None:
    """The first line of quoted history that runs to the end of the text: an Outlook-style
    marker, or an attribution naming an address ("On <date>, <name> <address> wrote:") with
    no quoted lines after it."""
    for index, line in enumerate(lines):
        if not line.strip() or _is_quoted(line):
            continue
        if _ORIGINAL_MESSAGE.fullmatch(line) or _header_block_at(lines, index):
            return index
        end = _attribution_at(lines, index, dated=True)
        if end is not None and any("@" in line for line in lines[index : end + 1]):
            following = _next_text_line(lines, end + 1)
            if following is None or not _is_quoted(lines[following]):
                return index
    return None


def _drop_quoted_lines(lines: list[str]) -> list[str]:
    """``lines`` without ``>`` lines, nor the attribution line and blank lines right above a
    run of them."""
    kept: list[str] = []
    index = 0
    while index < len(lines):
        if not _is_quoted(lines[index]):
            kept.append(lines[index])
            index += 1
            continue
        while kept and not kept[-1].strip():
            kept.pop()
        for size in (3, 2, 1):  # an attribution wrapped over up to three lines
            if len(kept) >= size and _attribution_at(kept, len(kept) - size, dated=False) == (
                len(kept) - 1
            ):
                del kept[-size:]
                break
        while index < len(lines) and (_is_quoted(lines[index]) or not lines[index].strip()):
            index += 1
        if kept and index < len(lines):
            kept.append("")
    return kept


def strip_quotes(text: str) -> str:
    """``text`` without its quoted history (the module's docstring has the rules)."""
    lines = text.split("\n")
    start = history_start(lines)
    if start is not None:
        lines = lines[:start]
    lines = _drop_quoted_lines(lines)
    while lines and (not lines[-1].strip() or _SEPARATOR.fullmatch(lines[-1])):
        lines.pop()
    return "\n".join(lines)


def strip_signature(text: str) -> str:
    """``text`` without its signature: from the last ``--`` line when at most
    :data:`SIGNATURE_MAX_LINES` lines follow, and trailing "Sent from my iPhone" lines."""
    lines = text.split("\n")
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].rstrip() == "--":
            if sum(1 for line in lines[index + 1 :] if line.strip()) <= SIGNATURE_MAX_LINES:
                lines = lines[:index]
            break
    return "\n".join(without_mobile_signature(lines))


def without_mobile_signature(lines: list[str]) -> list[str]:
    lines = list(lines)
    while lines and (not lines[-1].strip() or _MOBILE_SIGNATURE.fullmatch(lines[-1])):
        lines.pop()
    return lines


def is_forward(subject: str | None, text: str) -> bool:
    """A forward: its subject says so (``Fwd:``, ``FW:``...), or the first marker in its
    text (a forwarded-message line, quoted lines, an attribution, an Outlook-style header
    block) is a forwarded-message line."""
    if subject and _FORWARD_SUBJECT.match(subject):
        return True
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if _FORWARD_MARKER.fullmatch(line):
            return True
        if (
            _is_quoted(line)
            or _ORIGINAL_MESSAGE.fullmatch(line)
            or _header_block_at(lines, index)
            or _attribution_at(lines, index, dated=True) is not None
        ):
            return False
    return False
