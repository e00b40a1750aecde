"""What one recipient of a campaign is sent, decided without a server: variables and their
defaults, the messaging window and the template, a subject, quiet hours in their zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnichannel_core.module import BulkTarget, Contact, InvalidInput, Media, Reach
from omnichannel_core.modules.campaigns.compose import (
    Composed,
    Deferred,
    Skipped,
    decide,
    quiet_until,
    zone,
)
from omnichannel_core.modules.campaigns.records import (
    Audience,
    AudienceKind,
    Campaign,
    CampaignMessage,
    QuietHours,
    Schedule,
    SkipReason,
    Template,
)
from omnichannel_core.modules.campaigns.render import (
    MissingVariable,
    check_template,
    render,
)

NOW = datetime(2027, 3, 21, 12, 0, tzinfo=UTC)
SMS = Reach("sms")
WHATSAPP = Reach("whatsapp", prefix="whatsapp:", window_hours=24, templates=True)
EMAIL = Reach("email", subject=True)


def person(**fields: object) -> Contact:
    values: dict[str, object] = {"id": "ct_1", "display_name": "Ana María Pérez", "identities": ()}
    return Contact(**{**values, **fields})  # type: ignore[arg-type]


def a_campaign(message: CampaignMessage, schedule: Schedule | None = None) -> Campaign:
    return Campaign(
        id="cmp_1",
        name="Spring",
        channel="twilio",
        sender="sms",
        audience=Audience(AudienceKind.CONTACTS, contact_ids=("ct_1",)),
        message=message,
        schedule=schedule or Schedule(),
    )


def target(
    reach: Reach = SMS,
    contact: Contact | None = None,
    address: str | None = "+15550001111",
    last_inbound_at: datetime | None = None,
) -> BulkTarget:
    return BulkTarget("twilio", contact or person(), reach, address, last_inbound_at)


def test_variables_come_from_the_profile_then_the_inline_default_then_the_campaigns():
    ana = person(company="Acme", attributes={"plan": "pro", "vip": True}, emails=("a@x.io",))
    assert render("{{first_name}} {{ name }}", ana, {}) == "Ana Ana María Pérez"
    assert render("{{company}}/{{email}}/{{attributes.plan}}", ana, {}) == "Acme/a@x.io/pro"
    assert render("{{attributes.vip}}", ana, {}) == "yes"
    nobody = person(display_name=None)
    assert render("Hola {{first_name|amigo}}", nobody, {}) == "Hola amigo"
    assert render("Hola {{first_name}}", nobody, {"first_name": "cliente"}) == "Hola cliente"
    with pytest.raises(MissingVariable) as missing:
        render("{{attributes.plan}}", nobody, {})
    assert missing.value.name == "attributes.plan"


@pytest.mark.parametrize(
    "text", ["Hola {{frist_name}}", "{{attributes.}}", "{{ }}", "Hola {{first_name", "a }} b"]
)
def test_a_template_with_an_unknown_variable_or_stray_braces_is_refused(text):
    with pytest.raises(InvalidInput):
        check_template(text, "message.text")


def test_free_form_text_inside_the_window_the_template_outside_it():
    message = CampaignMessage(
        text="Hola {{first_name}}",
        template=Template("HX" + "a" * 32, {"1": "{{first_name}}", "2": "{{company|-}}"}),
    )
    campaign = a_campaign(message)
    recent = decide(campaign, target(WHATSAPP, last_inbound_at=NOW - timedelta(hours=2)), NOW)
    assert isinstance(recent, Composed) and not recent.template
    assert recent.request.text == "Hola Ana"
    stale = decide(campaign, target(WHATSAPP, last_inbound_at=NOW - timedelta(hours=30)), NOW)
    assert isinstance(stale, Composed) and stale.template
    assert stale.request.text is None
    assert stale.request.metadata["content_variables"] == {"1": "Ana", "2": "-"}
    assert stale.request.metadata["campaign"] == {"id": "cmp_1", "name": "Spring"}

    textual = a_campaign(CampaignMessage(text="Hola"))
    assert decide(textual, target(WHATSAPP), NOW) == Skipped(SkipReason.WINDOW_CLOSED)
    assert isinstance(decide(textual, target(SMS), NOW), Composed)  # SMS has no window


def test_the_reasons_a_recipient_is_skipped():
    campaign = a_campaign(CampaignMessage(text="{{attributes.plan}}"))
    assert decide(campaign, target(address=None), NOW) == Skipped(SkipReason.NO_ADDRESS)
    stopped = target(contact=person(opted_out=("twilio",)))
    assert decide(campaign, stopped, NOW) == Skipped(SkipReason.OPTED_OUT)
    assert decide(campaign, target(), NOW) == Skipped(
        SkipReason.MISSING_VARIABLE, "attributes.plan"
    )


def test_an_email_gets_its_subject_and_media_go_with_the_text():
    image = Media(url="https://cdn.example.com/spring.png", content_type="image/png")
    message = CampaignMessage(
        text="Hola {{first_name}}", subject="Para {{first_name}}", media=(image,)
    )
    decided = decide(a_campaign(message), target(EMAIL), NOW)
    assert isinstance(decided, Composed)
    assert decided.request.metadata["email"] == {"subject": "Para Ana"}
    assert decided.request.media == (image,)
    sms = decide(a_campaign(message), target(SMS), NOW)
    assert isinstance(sms, Composed) and "email" not in sms.request.metadata


def test_quiet_hours_are_read_in_the_recipients_zone_and_span_midnight():
    quiet = QuietHours("21:00", "09:00")
    madrid = zone("Europe/Madrid", "UTC")
    late = datetime(2027, 1, 10, 22, 30, tzinfo=UTC)  # 23:30 in Madrid
    assert quiet_until(quiet, late, madrid) == datetime(2027, 1, 11, 8, 0, tzinfo=UTC)
    early = datetime(2027, 1, 10, 6, 0, tzinfo=UTC)  # 07:00 in Madrid
    assert quiet_until(quiet, early, madrid) == datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
    assert quiet_until(quiet, datetime(2027, 1, 10, 12, 0, tzinfo=UTC), madrid) is None
    assert zone("Not/AZone", "America/Bogota").key == "America/Bogota"

    schedule = Schedule(timezone="UTC", quiet_hours=QuietHours("22:00", "23:59"))
    campaign = a_campaign(CampaignMessage(text="hi"), schedule)
    tokyo = target(contact=person(timezone="Asia/Tokyo"))
    at = datetime(2027, 1, 10, 13, 30, tzinfo=UTC)  # 22:30 in Tokyo, 13:30 in UTC
    assert decide(campaign, tokyo, at) == Deferred(datetime(2027, 1, 10, 14, 59, tzinfo=UTC))
    assert isinstance(decide(campaign, target(), at), Composed)


def test_a_long_run_of_spaces_is_read_in_linear_time_and_blank_names_are_no_names():
    """``{{`` and 4,000 spaces is refused at once (the pattern does not backtrack); a display
    name of spaces gives no first name, so its default is used."""
    with pytest.raises(InvalidInput):
        check_template("{{" + " " * 4094, "message.text")
    assert render("{{ first_name | there }}", person(display_name="\u2003 \t"), {}) == "there"


def test_a_text_too_long_once_filled_is_skipped():
    long_plan = person(attributes={"plan": "x" * 1000})
    campaign = a_campaign(CampaignMessage(text="{{attributes.plan}}" * 5))
    assert decide(campaign, target(contact=long_plan), NOW) == Skipped(
        SkipReason.TOO_LONG, "5000 characters"
    )


def test_quiet_hours_end_after_now_when_the_clock_is_turned_back():
    """On the night New York's clocks go back, 01:10 happens twice: quiet hours until 01:30
    end after now, never before."""
    new_york = zone("America/New_York", "UTC")
    now = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)  # 01:10 EST, the second one
    until = quiet_until(QuietHours("00:00", "01:30"), now, new_york)
    assert until is not None and until > now
