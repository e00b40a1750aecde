"""Fast tests of the Twilio channel's pure parts: signatures, form parsing, status mapping,
settings, local send checks and the base-URL rewriting HTTP client (against a real loopback
fake). The end-to-end behaviour through the real server lives in the other test_twilio_*.py
files."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from omnichannel_twilio import health, outbound
from omnichannel_twilio.api_client import rewrite_url, twilio_client
from omnichannel_twilio.channel import TwilioChannel
from omnichannel_twilio.inbound import inbound_message
from omnichannel_twilio.media import media_hosts
from omnichannel_twilio.routes import TwilioSend
from omnichannel_twilio.settings import TwilioSettings, parse_settings
from omnichannel_twilio.signature import compute_signature, parse_form, verify_signature
from omnichannel_twilio.status_callbacks import status_result
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from omnichannel_core.channel import (
    ChannelUnavailable,
    Config,
    Consent,
    DeliveryStatus,
    InvalidInput,
    Media,
    OutboundMessage,
    Sender,
    SendFailed,
    SendOutcomeUnknown,
    WebhookRejected,
    WebhookRequest,
)
from omnichannel_core.testing.fake_provider import FakeProvider, ScriptedResponse

SID = "AC" + "0" * 32
TOKEN = "test-auth-token"
PUBLIC = "https://omni.example.test"
WEBHOOK_URL = PUBLIC + "/api/channels/twilio/webhook"


def config(**environ: str) -> Config:
    base = {
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_PHONE_NUMBER": "+15550000000",
        "OMNICHANNEL_PUBLIC_URL": PUBLIC,
    }
    merged = {k: v for k, v in {**base, **environ}.items() if v is not None}
    return Config.from_environ(merged, dotenv=None)


def form(**params: str) -> dict[str, list[str]]:
    return parse_form(urlencode(params).encode())


def signed_request(params: dict[str, str], url: str = WEBHOOK_URL, signature: str | None = None):
    body = urlencode(params).encode()
    if signature is None:
        signature = RequestValidator(TOKEN).compute_signature(url, params)
    return WebhookRequest(
        method="POST",
        url=url,
        path="/api/channels/twilio/webhook",
        headers={"x-twilio-signature": signature} if signature else {},
        query={},
        body=body,
    )


# signatures ----------------------------------------------------------------------------


def test_signature_matches_twilio_request_validator() -> None:
    """Our signature is the one twilio's own RequestValidator computes for the same POST."""
    params = {"MessageSid": "SM1", "Body": "héllo & bye", "From": "+15551234567", "Empty": ""}
    expected = RequestValidator(TOKEN).compute_signature(WEBHOOK_URL, params)
    assert compute_signature(TOKEN, WEBHOOK_URL, form(**params)) == expected
    assert RequestValidator(TOKEN).validate(WEBHOOK_URL, params, expected)


def test_signature_with_repeated_parameters_matches_the_sdk() -> None:
    """A parameter sent twice is signed as the SDK signs a multi-valued form."""
    pairs = [("To", "+1"), ("MediaUrl0", "https://b"), ("MediaUrl0", "https://a")]
    expected = RequestValidator(TOKEN).compute_signature(WEBHOOK_URL, MultiDict(pairs))
    assert compute_signature(TOKEN, WEBHOOK_URL, parse_form(urlencode(pairs).encode())) == expected


def test_verify_accepts_a_twilio_signed_request_and_returns_its_params() -> None:
    """A request signed as Twilio signs it passes and yields every parameter."""
    params = verify_signature(signed_request({"MessageSid": "SM1", "Body": ""}), TOKEN)
    assert params == {"MessageSid": ["SM1"], "Body": [""]}


def test_verify_accepts_the_url_with_the_default_port_added() -> None:
    """Like twilio's validator, a signature over the URL with :443 is accepted too."""
    signature = RequestValidator(TOKEN).compute_signature(
        "https://omni.example.test:443/api/channels/twilio/webhook", {"A": "1"}
    )
    assert verify_signature(signed_request({"A": "1"}, signature=signature), TOKEN)


@pytest.mark.parametrize(
    "signature", ["", "wrong", RequestValidator("other-token").compute_signature(WEBHOOK_URL, {})]
)
def test_verify_rejects_missing_or_wrong_signatures(signature: str) -> None:
    """No header, garbage, or a signature made with another token: WebhookRejected (403)."""
    with pytest.raises(WebhookRejected):
        verify_signature(signed_request({"A": "1"}, signature=signature), TOKEN)


def test_verify_rejects_a_signature_for_another_url() -> None:
    """A signature is bound to the URL Twilio called: another path does not verify."""
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/elsewhere", {"A": "1"})
    with pytest.raises(WebhookRejected):
        verify_signature(signed_request({"A": "1"}, signature=signature), TOKEN)


def test_a_body_that_is_not_utf8_is_invalid_input() -> None:
    """Form data that is not UTF-8 (raw or percent-encoded) is a 400, not a crash."""
    for body in (b"Body=\xff", b"Body=%FF"):
        with pytest.raises(InvalidInput):
            parse_form(body)


# inbound -------------------------------------------------------------------------------


def test_sms_form_becomes_an_inbound_message() -> None:
    """An SMS: the bare number is the sender, no reply_to, Body is the text."""
    message = inbound_message(
        form(MessageSid="SM123", From="+15551234567", To="+15550000000", Body="Hi", NumSegments="1")
    )
    assert message.provider_message_id == "SM123"
    assert message.sender == "+15551234567"
    assert message.reply_to is None
    assert message.text == "Hi"
    assert message.media == ()
    assert message.consent is None
    assert message.metadata == {"twilio": {"to": "+15550000000", "kind": "sms", "num_segments": 1}}


def test_whatsapp_form_keeps_the_profile_name_and_answers_on_whatsapp() -> None:
    """WhatsApp: the contact is the bare number, answers go to whatsapp:+..., ProfileName is
    the sender's name."""
    message = inbound_message(
        form(
            MessageSid="SM9",
            From="whatsapp:+15551234567",
            To="whatsapp:+15550000000",
            Body="Olá",
            ProfileName="Ada",
        )
    )
    assert message.sender == "+15551234567"
    assert message.reply_to == "whatsapp:+15551234567"
    assert message.sender_name == "Ada"
    assert message.metadata["twilio"] == {"to": "whatsapp:+15550000000", "kind": "whatsapp"}


def test_every_media_item_is_kept() -> None:
    """Three media items: each URL with its content type, in order, not just the first."""
    params = {"MessageSid": "MM1", "From": "+15551234567", "NumMedia": "3"}
    for index, kind in enumerate(("image/jpeg", "image/png", "audio/ogg")):
        params[f"MediaUrl{index}"] = f"https://api.twilio.com/media/{index}"
        params[f"MediaContentType{index}"] = kind
    message = inbound_message(form(**params))
    assert message.text is None
    assert message.media == (
        Media("https://api.twilio.com/media/0", "image/jpeg"),
        Media("https://api.twilio.com/media/1", "image/png"),
        Media("https://api.twilio.com/media/2", "audio/ogg"),
    )


def test_a_shared_location_goes_into_metadata() -> None:
    """A WhatsApp location: floats for the coordinates, address and label as strings."""
    message = inbound_message(
        form(
            MessageSid="SM2",
            From="whatsapp:+15551234567",
            Latitude="48.8584",
            Longitude="2.2945",
            Address="Champ de Mars, Paris",
            Label="Eiffel Tower",
        )
    )
    assert message.metadata["location"] == {
        "latitude": 48.8584,
        "longitude": 2.2945,
        "address": "Champ de Mars, Paris",
        "label": "Eiffel Tower",
    }


@pytest.mark.parametrize(
    ("extra", "consent"),
    [
        ({"Body": " stop "}, Consent.OPT_OUT),
        ({"Body": "Unsubscribe"}, Consent.OPT_OUT),
        ({"Body": "QUIT"}, Consent.OPT_OUT),
        ({"Body": "start"}, Consent.OPT_IN),
        ({"Body": "unstop"}, Consent.OPT_IN),
        ({"Body": "please stop"}, None),
        ({"Body": "Arrêtez", "OptOutType": "STOP"}, Consent.OPT_OUT),
        ({"Body": "Commencez", "OptOutType": "START"}, Consent.OPT_IN),
        ({"Body": "stop", "OptOutType": "HELP"}, None),
    ],
)
def test_stop_and_start_set_consent(extra: dict[str, str], consent: Consent | None) -> None:
    """OptOutType wins when present; otherwise the trimmed, case-insensitive keyword."""
    message = inbound_message(form(MessageSid="SM3", From="+15551234567", **extra))
    assert message.consent == consent


def test_a_message_with_nothing_in_it_is_still_a_message() -> None:
    """No text, media nor location: still stored, since Twilio sent it."""
    message = inbound_message(form(MessageSid="SM4", From="+15551234567", Body=""))
    assert (message.text, message.media, message.provider_message_id) == (None, (), "SM4")


def test_sms_sid_is_the_fallback_id_and_from_is_required() -> None:
    """SmsSid stands in for MessageSid; a webhook without From is invalid input."""
    assert inbound_message(form(SmsSid="SM5", From="+1555")).provider_message_id == "SM5"
    with pytest.raises(InvalidInput):
        inbound_message(form(MessageSid="SM6"))


# status callbacks ----------------------------------------------------------------------

STATUS_TABLE = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "canceled": "failed",
    "undelivered": "undelivered",
}


@pytest.mark.parametrize(("twilio_status", "ours"), sorted(STATUS_TABLE.items()))
def test_status_mapping(twilio_status: str, ours: str) -> None:
    """Each Twilio MessageStatus maps to the spec's delivery status, answered with an empty 200."""
    result = status_result(form(MessageSid="SM7", MessageStatus=twilio_status))
    assert [update.status for update in result.statuses] == [DeliveryStatus(ours)]
    assert (result.response.status, result.response.body) == (200, b"")


@pytest.mark.parametrize("twilio_status", ["receiving", "received", "partially_delivered"])
def test_inbound_and_unknown_statuses_change_nothing(twilio_status: str) -> None:
    """Inbound statuses (and ones Twilio may add later) are acknowledged without an update."""
    result = status_result(form(MessageSid="SM8", MessageStatus=twilio_status))
    assert result.statuses == ()
    assert result.response.status == 200


def test_a_failure_keeps_twilio_error_code_and_message() -> None:
    """ErrorCode and ErrorMessage travel with a failed/undelivered update."""
    result = status_result(
        form(MessageSid="SM9", MessageStatus="undelivered", ErrorCode="30003", ErrorMessage="x")
    )
    (update,) = result.statuses
    assert (update.error_code, update.error_message) == ("30003", "x")


# settings ------------------------------------------------------------------------------


def test_settings_parse_every_variable() -> None:
    """All variables set: configured, WhatsApp sender without its prefix, base URL trimmed."""
    settings = parse_settings(
        config(
            TWILIO_WHATSAPP_NUMBER="whatsapp:+14155238886",
            TWILIO_MESSAGING_SERVICE_SID="MG" + "1" * 32,
            TWILIO_API_BASE_URL="http://127.0.0.1:9/",
        )
    )
    assert settings.configured
    assert settings.whatsapp_number == "+14155238886"
    assert settings.messaging_service_sid == "MG" + "1" * 32
    assert settings.api_base_url == "http://127.0.0.1:9"
    assert TOKEN not in repr(settings)


def test_whatsapp_number_defaults_to_the_phone_number() -> None:
    """Without TWILIO_WHATSAPP_NUMBER, WhatsApp goes out from TWILIO_PHONE_NUMBER."""
    settings = parse_settings(config())
    assert settings.whatsapp_number == "+15550000000"
    assert settings.api_base_url == "https://api.twilio.com"


def test_missing_variables_are_listed_by_name() -> None:
    """Nothing set: every required variable is named, in order, and sending is unavailable."""
    settings = parse_settings(
        config(
            TWILIO_ACCOUNT_SID=None,
            TWILIO_AUTH_TOKEN=None,
            TWILIO_PHONE_NUMBER=None,
            OMNICHANNEL_PUBLIC_URL=None,
        )
    )
    assert settings.missing == (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_PHONE_NUMBER",
        "OMNICHANNEL_PUBLIC_URL",
    )
    with pytest.raises(ChannelUnavailable, match="TWILIO_AUTH_TOKEN"):
        settings.require_configured("twilio")
    with pytest.raises(ChannelUnavailable):
        settings.require_credentials("twilio")


def test_a_malformed_phone_number_makes_the_channel_unconfigured() -> None:
    """A sender that is not E.164 is reported, naming the variable."""
    settings = parse_settings(config(TWILIO_PHONE_NUMBER="5550000"))
    assert not settings.configured
    assert "TWILIO_PHONE_NUMBER" in settings.problems


def test_settings_are_parsed_once_per_config_object() -> None:
    """The same Config object gives the same settings object; another Config is parsed anew."""
    first_config = config()
    assert TwilioSettings.from_config(first_config) is TwilioSettings.from_config(first_config)
    assert TwilioSettings.from_config(config()) is not TwilioSettings.from_config(first_config)


class ReadNames(dict[str, str]):
    """An environment that notes the name of every variable read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(name)
        return super().get(name, default)


def declared() -> dict[str, bool]:
    """The channel's ``settings`` hook: variable -> secret."""
    return {item.name: item.secret for item in asyncio.run(TwilioChannel().settings())}


def test_the_settings_hook_declares_every_variable_the_channel_reads() -> None:
    """What the settings and the media fetch read from ``config.settings`` is exactly what
    the ``settings`` hook declares, the auth token its one secret; where it connects (the
    API, the media hosts) is the environment's only."""
    environ = ReadNames({"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN})
    settings = Config(environ=environ)
    parse_settings(settings)
    media_hosts(settings)
    assert environ.read == set(declared())
    assert [name for name, secret in declared().items() if secret] == ["TWILIO_AUTH_TOKEN"]
    hook = asyncio.run(TwilioChannel().settings())
    assert [item.name for item in hook if not item.storable] == [
        "TWILIO_API_BASE_URL",
        "TWILIO_MEDIA_HOSTS",
    ]


def test_stored_credentials_are_used_and_a_change_is_read_at_once() -> None:
    """With nothing in the environment, the stored SID, token and number configure the
    channel; a replaced token is what the next read gives (no new Config, no restart)."""
    settings = Config(environ={}, public_url=PUBLIC)
    assert not TwilioSettings.from_config(settings).configured
    stored = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN}
    settings.stored_settings.replace({**stored, "TWILIO_PHONE_NUMBER": "+15550000000"}, 1)
    assert TwilioSettings.from_config(settings).configured
    assert TwilioSettings.from_config(settings).require_credentials("twilio") == (SID, TOKEN)
    settings.stored_settings.replace({**stored, "TWILIO_AUTH_TOKEN": "rotated-token"}, 2)
    assert TwilioSettings.from_config(settings).auth_token == "rotated-token"
    assert TwilioSettings.from_config(settings).missing == ("TWILIO_PHONE_NUMBER",)


def test_the_environment_wins_over_stored_credentials() -> None:
    """A token set in the environment is used whatever is stored."""
    settings = config()
    settings.stored_settings.replace({"TWILIO_AUTH_TOKEN": "stored-token"}, 1)
    assert TwilioSettings.from_config(settings).auth_token == TOKEN


# local send checks ---------------------------------------------------------------------


def outbound_message(to: str = "+15551234567", **fields) -> OutboundMessage:
    return OutboundMessage(id="msg_1", conversation_id="cnv_1", to=to, **{"text": "hi", **fields})


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (outbound_message(to="15551234567"), "invalid_recipient"),
        (outbound_message(to="whatsapp:+0123"), "invalid_recipient"),
        (outbound_message(text="x" * 1601), "body_too_long"),
        (
            outbound_message(media=tuple(Media(f"https://m/{i}") for i in range(11))),
            "too_many_media",
        ),
        (outbound_message(media=(Media("http://m/1"),)), "media_url_not_https"),
        (outbound_message(text=None), "empty"),
    ],
)
def test_local_checks_refuse_before_calling_twilio(message: OutboundMessage, code: str) -> None:
    """E.164 recipient, at most 1600 characters, at most 10 https media: else SendFailed,
    not retryable, with a code saying which."""
    with pytest.raises(SendFailed) as raised:
        outbound.create_params(message, parse_settings(config()), "twilio")
    assert (raised.value.code, raised.value.retryable) == (code, False)


def test_sms_whatsapp_and_template_parameters() -> None:
    """SMS from the phone number (or the messaging service), WhatsApp from whatsapp:+...;
    every send sets the status callback; a template sends its Content SID and variables."""
    settings = parse_settings(config(TWILIO_WHATSAPP_NUMBER="+14155238886"))
    sms = outbound.create_params(outbound_message(text="x" * 1600), settings, "twilio")
    assert sms["from_"] == "+15550000000"
    assert sms["status_callback"] == PUBLIC + "/api/channels/twilio/status?message_id=msg_1"
    template = outbound_message(
        to="whatsapp:+15551234567",
        text=None,
        metadata={"content_sid": "HX" + "a" * 32, "content_variables": {"1": "Ada"}},
    )
    whatsapp = outbound.create_params(template, settings, "twilio")
    assert whatsapp["from_"] == "whatsapp:+14155238886"
    assert whatsapp["to"] == "whatsapp:+15551234567"
    assert (whatsapp["content_sid"], whatsapp["content_variables"]) == (
        "HX" + "a" * 32,
        '{"1": "Ada"}',
    )
    assert "body" not in whatsapp
    service = parse_settings(config(TWILIO_MESSAGING_SERVICE_SID="MG" + "2" * 32))
    via_service = outbound.create_params(outbound_message(), service, "twilio")
    assert via_service["messaging_service_sid"] == "MG" + "2" * 32
    assert "from_" not in via_service


def test_send_body_names_what_to_send() -> None:
    """A TwilioSend (its JSON checked by the core against the schema its fields declare)
    names what to send: the text and media, or a template (content_sid and its variables)
    with the text optional. Without a template the text is required and content_variables
    refused; the real server's answers to those are in test_twilio_outbound."""
    sent = TwilioSend(to="+15551234567", message="hi", media_urls=("https://a",)).request()
    assert (sent.text, sent.media, sent.metadata) == ("hi", (Media("https://a"),), {})
    template = TwilioSend(to="+15551234567", content_sid="HX1", message="").request()
    assert (template.text, template.metadata) == (None, {"content_sid": "HX1"})
    variables = TwilioSend(to="+1555", content_sid="HX1", content_variables={"1": "Ada"})
    assert variables.request().metadata == {"content_sid": "HX1", "content_variables": {"1": "Ada"}}
    for bad in ({}, {"message": "  "}, {"message": "hi", "content_variables": {}}):
        with pytest.raises(InvalidInput):
            TwilioSend(to="+15551234567", **bad)


# the SDK, pointed at a loopback fake ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "rewritten"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            "http://127.0.0.1:8/2010-04-01/Accounts/AC1/Messages.json",
        ),
        ("https://messaging.twilio.com/v1/Services?x=1", "http://127.0.0.1:8/v1/Services?x=1"),
        ("https://example.com/twilio.com", "https://example.com/twilio.com"),
        ("https://eviltwilio.com/a", "https://eviltwilio.com/a"),
    ],
)
def test_rewrite_url(url: str, rewritten: str) -> None:
    """Only https Twilio hosts move to the base URL; path and query are kept."""
    assert rewrite_url(url, "http://127.0.0.1:8") == rewritten


def test_rewrite_keeps_a_base_path() -> None:
    """A base URL with a path (a proxy) prefixes the API path."""
    assert rewrite_url("https://api.twilio.com/x", "https://proxy.test/twilio/") == (
        "https://proxy.test/twilio/x"
    )


@pytest.fixture
def loopback_twilio() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def test_the_sdk_sends_to_the_base_url(loopback_twilio: FakeProvider) -> None:
    """messages.create through our client reaches the fake over real HTTP, with basic auth
    and the form Twilio expects; the answer's sid and status come back mapped."""
    loopback_twilio.queue(
        ScriptedResponse.json(201, {"sid": "SM" + "f" * 32, "status": "accepted"})
    )
    settings = parse_settings(config(TWILIO_API_BASE_URL=loopback_twilio.url))
    result = outbound.deliver(outbound_message(media=(Media("https://m/1"),)), settings, "twilio")
    assert (result.provider_message_id, result.status) == ("SM" + "f" * 32, DeliveryStatus.QUEUED)
    (request,) = loopback_twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.headers["authorization"].startswith("Basic ")
    sent = parse_form(request.body)
    assert sent["To"] == ["+15551234567"] and sent["Body"] == ["hi"]
    assert sent["MediaUrl"] == ["https://m/1"]
    assert sent["StatusCallback"] == [PUBLIC + "/api/channels/twilio/status?message_id=msg_1"]


TWILIO_ERRORS = {
    "rate_limited": (429, 20429, "Too Many Requests"),
    "internal_error": (500, 20500, "Internal"),
    "unavailable": (503, 20503, "down"),
    "outside_window": (400, 63016, "Outside window"),
    "unsubscribed": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "bad_credentials": (401, 20003, "Authenticate"),
}


@pytest.mark.parametrize("case", sorted(TWILIO_ERRORS))
def test_one_attempt_classifies_twilios_error(loopback_twilio: FakeProvider, case: str) -> None:
    """deliver makes exactly one request whatever Twilio answers (the outbox retries): a 429
    is retryable and throttled (the outbox slows the pace), a 5xx retryable and not
    throttled, a 4xx final; each with Twilio's code and HTTP status, and a 4xx with
    Twilio's message (63016 telling to use a template)."""
    status, code, text = TWILIO_ERRORS[case]
    settings = parse_settings(config(TWILIO_API_BASE_URL=loopback_twilio.url))
    loopback_twilio.queue(ScriptedResponse.json(status, {"code": code, "message": text}))
    loopback_twilio.default = ScriptedResponse.json(201, {"sid": "SM" + "e" * 32})  # a retry
    with pytest.raises(SendFailed) as failed:
        outbound.deliver(outbound_message(), settings, "twilio")
    error = failed.value
    assert len(loopback_twilio.requests) == 1
    assert (error.code, error.details["twilio_status"]) == (str(code), status)
    assert error.retryable is (status == 429 or status >= 500)
    assert error.throttled is (status == 429)
    assert error.retry_after is None  # Twilio sends no Retry-After: the outbox's backoff
    if not error.retryable:
        assert error.message.startswith(text)
    if code == 63016:
        assert "content_sid" in error.message


def test_one_attempt_that_twilio_takes_is_sent_once(loopback_twilio: FakeProvider) -> None:
    """A 201 is the result at once: one request, the SID and Twilio's status."""
    settings = parse_settings(config(TWILIO_API_BASE_URL=loopback_twilio.url))
    loopback_twilio.queue(ScriptedResponse.json(201, {"sid": "SM1", "status": "queued"}))
    result = outbound.deliver(outbound_message(), settings, "twilio")
    assert (result.provider_message_id, result.status) == ("SM1", DeliveryStatus.QUEUED)
    assert len(loopback_twilio.requests) == 1


def test_no_connection_is_retryable_and_not_throttled() -> None:
    """Nobody listening: the request never left, so the outbox may try again (retryable,
    code "unreachable"); not a rate limit."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"  # bound, never listening
        settings = parse_settings(config(TWILIO_API_BASE_URL=url))
        with pytest.raises(SendFailed) as failed:
            outbound.deliver(outbound_message(), settings, "twilio")
    assert (failed.value.retryable, failed.value.throttled, failed.value.code) == (
        True,
        False,
        "unreachable",
    )


def test_a_read_timeout_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """When Twilio took the request but did not answer in time the send is not repeated
    (that could deliver the message twice): one attempt, then SendOutcomeUnknown."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        settings = parse_settings(config(TWILIO_API_BASE_URL=url))
        monkeypatch.setattr(
            outbound, "twilio_client", functools.partial(twilio_client, timeout=0.3)
        )
        with pytest.raises(SendOutcomeUnknown):
            outbound.deliver(outbound_message(), settings, "twilio")
        accepted, _ = listener.accept()  # the one request: no second connection is waiting
        accepted.close()
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()


def test_a_connection_closed_after_the_request_is_an_unknown_outcome() -> None:
    """Twilio reads the whole request, then the connection closes without an answer: it may
    have taken the message, so SendOutcomeUnknown (the status callback settles it), never a
    retryable failure; and the request was made once."""
    import threading

    requests_read: list[bytes] = []

    def hang_up(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                body += connection.recv(65536)
            requests_read.append(body)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        settings = parse_settings(config(TWILIO_API_BASE_URL=url))
        twilio = threading.Thread(target=hang_up, args=(listener,))
        twilio.start()
        with pytest.raises(SendOutcomeUnknown) as unknown:
            outbound.deliver(outbound_message(), settings, "twilio")
        twilio.join(10)
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # no second attempt
    assert "status callback" in unknown.value.message
    [body] = requests_read
    assert parse_form(body)["StatusCallback"] == [
        PUBLIC + "/api/channels/twilio/status?message_id=msg_1"
    ]


# send policy: Twilio's pace, per sender ------------------------------------------------


def test_send_policy_declares_twilios_published_limits() -> None:
    """SMS 1 per second per sender, WhatsApp 80 per second per sender; retryable failures
    retried for an hour, a message in doubt waiting an hour for its status callback; never
    resent while in doubt (Twilio would deliver it twice)."""
    settings = parse_settings(config(TWILIO_WHATSAPP_NUMBER="+14155238886"))
    policy = outbound.send_policy(settings)
    assert policy.rate == 1.0
    assert (policy.retry_for, policy.confirm_within, policy.resend_safe) == (3600, 3600, False)
    assert policy.sender("+15551234567") == Sender("+15550000000")
    assert policy.sender("whatsapp:+15551234567") == Sender("whatsapp:+14155238886", rate=80.0)
    service = outbound.send_policy(
        parse_settings(config(TWILIO_MESSAGING_SERVICE_SID="MG" + "3" * 32))
    )
    assert service.sender("+15551234567") == Sender("MG" + "3" * 32)
    assert service.sender("whatsapp:+15551234567") == Sender("whatsapp:+15550000000", rate=80.0)


def test_health_checks_credentials_once_a_minute(loopback_twilio: FakeProvider) -> None:
    """The account fetch answers the credentials question; a second report within the
    minute reuses it; a 401 means rejected."""
    settings = parse_settings(config(TWILIO_API_BASE_URL=loopback_twilio.url))
    loopback_twilio.queue(ScriptedResponse.json(200, {"sid": SID, "status": "active"}))
    report = health.channel_health(settings)
    assert report.ok and report.checks["credentials"] == "accepted"
    assert health.channel_health(settings).checks["checked_at"] == report.checks["checked_at"]
    assert [r.path for r in loopback_twilio.requests] == [f"/2010-04-01/Accounts/{SID}.json"]
    rejected = parse_settings(
        config(TWILIO_API_BASE_URL=loopback_twilio.url, TWILIO_AUTH_TOKEN="bad")
    )
    loopback_twilio.queue(ScriptedResponse.json(401, {"code": 20003, "message": "Authenticate"}))
    report = health.channel_health(rejected)
    assert (report.ok, report.checks["credentials"]) == (False, "rejected")
    assert "bad" not in report.detail


def test_the_client_is_shared_per_settings() -> None:
    """One SDK client (one connection pool) per settings and timeout."""
    settings = parse_settings(config())
    assert twilio_client(settings) is twilio_client(settings)
    assert twilio_client(settings, timeout=1.0) is not twilio_client(settings)


# form parsing and signatures against the standard library and the SDK --------------------

TRICKY_FORMS = [
    "",
    "&",
    "&&",
    "a",
    "a=",
    "=b",
    "=",
    "==",
    "a=b=c",
    "a=1&a=2",
    "a=2&b=x&a=1&a=2",
    "a&a=&a=x",
    "&a=1&&b=2&",
    "%zz",
    "%",
    "%2",
    "%%41",
    "a=%zz%41",
    "+",
    "a+b=c+d",
    "%2B=%2b",
    "a%3Db=c",
    "a%26b=c%26d",
    "x=%20+%20",
    ";",
    "a=1;b=2",
    "a;b=c&d",
    "%00=%00",
    "ü=ö&€",
    "é%41=%C3%A9é",
    "%C3%BC=%E2%82%AC&Body=caf%C3%A9+%F0%9F%98%80",
    "Body=Hi+there%21+Can+I+move+it%3F+Thanks+%26+bye&From=%2B15551234567",
    # not UTF-8 once percent-decoded: parse_qs(errors="strict") raises, parse_form refuses
    "a=%C3",
    "a=%E2%82",
    "%FF=1",
    "a=%ED%A0%80",
    "é=%A9",
    "a=%C3é",
]


def stdlib_form(text: str) -> dict[str, list[str]] | str:
    """What parse_qs makes of the form as the channel used to call it, or "invalid"."""
    from urllib.parse import parse_qs

    try:
        return parse_qs(text, keep_blank_values=True, errors="strict", max_num_fields=1000)
    except ValueError:  # UnicodeDecodeError included
        return "invalid"


def our_form(body: bytes) -> dict[str, list[str]] | str:
    try:
        return parse_form(body)
    except InvalidInput:
        return "invalid"


@pytest.mark.parametrize("text", TRICKY_FORMS)
def test_parse_form_matches_parse_qs_on_tricky_forms(text: str) -> None:
    """Every edge case (empty fields, no '=', blank values, repeated keys in order, bad and
    partial escapes, '+', ';' not a separator, non-ASCII, non-UTF-8 escapes) parses exactly as
    parse_qs(keep_blank_values=True) does, refusals included."""
    expected = stdlib_form(text)
    result = our_form(text.encode())
    assert result == expected
    if isinstance(result, dict):  # same keys in the same (first-seen) order
        assert list(result) == list(expected)


def test_parse_form_matches_parse_qs_on_every_pairing_of_pieces() -> None:
    """Property-style: every form built from two or three tricky pieces parses as parse_qs."""
    import itertools

    pieces = ["", "a", "a=", "=b", "a=1", "a=2", "%41=%42", "+=+", "%zz", "é=%C3%A9", "b;c=d"]
    checked = 0
    for count in (2, 3):
        for combination in itertools.product(pieces, repeat=count):
            text = "&".join(combination)
            assert our_form(text.encode()) == stdlib_form(text), text
            checked += 1
    assert checked == len(pieces) ** 2 + len(pieces) ** 3


def test_parse_form_field_limit_matches_parse_qs() -> None:
    """1000 fields parse; 1001 (counted by separators, as parse_qs counts) are a 400."""
    at_limit = "&".join(f"f{i}=v" for i in range(1000))
    assert our_form(at_limit.encode()) == stdlib_form(at_limit)
    assert len(parse_form(at_limit.encode())) == 1000
    over = at_limit + "&"  # an empty 1001st field still counts
    assert stdlib_form(over) == "invalid"
    with pytest.raises(InvalidInput, match="more than 1000 fields"):
        parse_form(over.encode())


SIGNED_URLS = [
    WEBHOOK_URL,
    "https://omni.example.test:443/api/channels/twilio/webhook",
    "http://127.0.0.1:8123/api/channels/twilio/webhook?source=sms&x=%20y",
    "https://omni.example.test/api/channels/twilio/webhook?ünïcode=1",
]


@pytest.mark.parametrize("url", SIGNED_URLS)
@pytest.mark.parametrize(
    "text",
    [
        "",
        "Body=",
        "a=2&b=x&a=1&a=2",
        "A=1&a=1&B=&b=%C3%A9",
        "MediaUrl1=https%3A%2F%2Fb&MediaUrl0=https%3A%2F%2Fa&MediaUrl0=https%3A%2F%2Fa",
        "Body=Hi+there%21+%F0%9F%98%80&From=whatsapp%3A%2B15551234567&ProfileName=Zo%C3%AB",
    ],
)
def test_signature_equals_the_sdk_for_many_forms_and_urls(text: str, url: str) -> None:
    """The direct HMAC-SHA1 is the SDK's compute_signature for the same multi-valued form."""
    from urllib.parse import parse_qsl

    pairs = parse_qsl(text, keep_blank_values=True)
    expected = RequestValidator(TOKEN).compute_signature(url, MultiDict(pairs))
    assert compute_signature(TOKEN, url, parse_form(text.encode())) == expected


PORT_URLS = [
    "https://omni.example.test/api/channels/twilio/webhook",
    "https://omni.example.test:443/api/channels/twilio/webhook",
    "http://omni.example.test/api/channels/twilio/webhook",
    "http://omni.example.test:80/api/channels/twilio/webhook",
    "http://127.0.0.1:8123/api/channels/twilio/webhook",
    "http://127.0.0.1/api/channels/twilio/webhook",
    "https://omni.example.test/api/channels/twilio/webhook?a=1",
    "https://omni.example.test:443/api/channels/twilio/webhook?a=1",
    "https://omni.example.test/api/channels/twilio/status",
]


@pytest.mark.parametrize("called", PORT_URLS)
def test_verify_accepts_the_same_urls_as_the_sdk_validator(called: str) -> None:
    """For a request on each URL, a signature over each other URL is accepted exactly when
    the SDK's RequestValidator.validate accepts it (the URL as called, with or without the
    default port, any port removed), and the parameters come back as parsed."""
    params = {"MessageSid": "SM1", "Body": "a+b & c", "From": "+15551234567"}
    validator = RequestValidator(TOKEN)
    accepted = []
    for signed in PORT_URLS:
        signature = validator.compute_signature(signed, params)
        sdk_accepts = validator.validate(called, params, signature)
        try:
            ours = verify_signature(signed_request(params, url=called, signature=signature), TOKEN)
        except WebhookRejected:
            ours = None
        assert (ours is not None) == sdk_accepts, (called, signed)
        if ours is not None:
            assert ours == {name: [value] for name, value in params.items()}
            accepted.append(signed)
    assert called in accepted


def test_verify_accepts_a_signature_with_surrounding_whitespace() -> None:
    """The presented signature is compared stripped, as before."""
    signature = RequestValidator(TOKEN).compute_signature(WEBHOOK_URL, {"A": "1"})
    assert verify_signature(signed_request({"A": "1"}, signature=f" {signature}\t"), TOKEN)


def test_verify_refuses_a_body_that_is_not_utf8_even_when_signed() -> None:
    """A signed body that is not UTF-8 form data is InvalidInput (400), checked before the
    signature."""
    request = signed_request({"A": "1"})
    bad = WebhookRequest(
        method="POST",
        url=request.url,
        path=request.path,
        headers=request.headers,
        query={},
        body=b"Body=%C3",
    )
    with pytest.raises(InvalidInput):
        verify_signature(bad, TOKEN)


# health checks while Twilio is slow, and the client shared by the hook threads -------------


def _answer_account(connection: socket.socket) -> None:
    """Read one request from ``connection`` and answer it as Twilio's account fetch would."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(4096)
        if not chunk:
            return
        received += chunk
    body = b'{"sid": "%s", "status": "active"}' % SID.encode()
    connection.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def test_health_checks_run_one_at_a_time_without_making_others_wait() -> None:
    """While one thread asks Twilio, another health report answers at once: "checking" (not
    ok, no checked_at) before any answer is known, the last answer once one is; the running
    check then stores its own answer."""
    import threading
    import time

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        settings = parse_settings(config(TWILIO_API_BASE_URL=url))

        first = threading.Thread(target=health.check_credentials, args=(settings,))
        first.start()
        connection, _ = listener.accept()  # the first check is now waiting for Twilio
        report = health.channel_health(settings)
        assert (report.ok, report.detail) == (False, "credentials check in progress")
        assert report.checks["credentials"] == "checking"
        assert "checked_at" not in report.checks
        connection.close()  # Twilio hangs up without answering
        first.join(10)
        stale = health.check_credentials(settings)
        assert stale.outcome == "unreachable"

        later = time.monotonic() + 2 * health.CHECK_TTL_SECONDS  # the cached answer expired
        second = threading.Thread(target=health.check_credentials, args=(settings, later))
        second.start()
        connection, _ = listener.accept()
        assert health.check_credentials(settings, now=later) == stale
        _answer_account(connection)
        connection.close()
        second.join(10)
    assert not first.is_alive() and not second.is_alive()
    report = health.channel_health(settings)
    assert (report.ok, report.checks["credentials"]) == (True, "accepted")


def test_a_silent_twilio_fails_the_health_check_within_the_core_limit() -> None:
    """Twilio taking the connection but never answering: the check gives up after its 2 s
    read timeout, well within the core's 5 s limit on a health hook, as "unreachable"."""
    import time

    from omnichannel_core.channel import HEALTH_TIMEOUT_SECONDS

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        settings = parse_settings(
            config(TWILIO_API_BASE_URL=f"http://127.0.0.1:{listener.getsockname()[1]}")
        )
        started = time.monotonic()
        check = health.check_credentials(settings)
        elapsed = time.monotonic() - started
    assert (check.outcome, check.detail) == (
        "unreachable",
        "Twilio could not be reached: ReadTimeout",
    )
    assert elapsed < HEALTH_TIMEOUT_SECONDS


def test_one_shared_client_answers_each_hook_thread_over_kept_connections() -> None:
    """As many threads as the channel has hook threads fetch through one cached client at
    the same moment, twice: each gets the answer to its own request, and the second round
    reuses the first round's connections (the pool keeps one per hook thread)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from omnichannel_core.channel import HOOK_THREADS_PER_CHANNEL

    together = threading.Barrier(HOOK_THREADS_PER_CHANNEL, timeout=10)
    client_ports: list[int] = []

    class EchoAccount(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so connections can be reused

        def do_GET(self) -> None:
            client_ports.append(self.client_address[1])
            together.wait()  # every request is in flight at once before any is answered
            sid = self.path.rsplit("/", 1)[-1].removesuffix(".json")
            body = b'{"sid": "%s", "status": "active"}' % sid.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoAccount)
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        client = twilio_client(parse_settings(config(TWILIO_API_BASE_URL=url)))
        sids = [f"AC{n:032d}" for n in range(HOOK_THREADS_PER_CHANNEL)]

        def fetch(sid: str) -> str:
            return client.api.v2010.accounts(sid).fetch().sid

        with ThreadPoolExecutor(HOOK_THREADS_PER_CHANNEL) as threads:
            for _ in range(2):
                assert list(threads.map(fetch, sids)) == sids
        client.http_client.session.close()
    finally:
        server.shutdown()
        server.server_close()
        serving.join(10)
    assert len(client_ports) == 2 * HOOK_THREADS_PER_CHANNEL
    assert len(set(client_ports)) == HOOK_THREADS_PER_CHANNEL
