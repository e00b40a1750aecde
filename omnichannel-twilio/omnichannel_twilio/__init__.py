"""The Twilio channel for omnichannel: WhatsApp and SMS in and out, with delivery status."""
