"""The SMS channel: Twilio's Messages API, recipients, text rules, callbacks, reconcile."""
