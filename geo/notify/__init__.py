"""Webhook notifications (off by default): task events sent to a URL per area or account.

``targets`` checks a webhook's URL (http/https, where it resolves to) and masks its secrets;
``formats`` makes the events' payloads and the bodies of each format (plain JSON, 企业微信 and
钉钉 group robots, with 钉钉's signature); ``delivery`` sends one body to the address that was
checked; ``outbox`` sets webhooks up, queues events in the store's outbox and sends what is due,
in a background :class:`~geo.notify.outbox.Sender` of the server process.
"""
