"""The settings module: the business's name, time zone, hours and holidays, its
first-response target, an away message per channel, canned responses, and the channels'
variables stored through the API, secrets encrypted (docs/settings.md)."""
