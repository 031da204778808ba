"""Notifications of alarm transitions: webhooks (HMAC-signed), e-mail over SMTP and MQTT, from a
durable outbox with retries (docs/notifications.md)."""
