"""Alertmanager notifications received by the app: the webhook payload, the recent history and
the hook that pushes each notification to live dashboards."""

from app.alerting.history import AlertHistory, NotificationCallback, NotificationTooLarge
from app.alerting.models import WebhookAlert, WebhookPayload

__all__ = [
    "AlertHistory",
    "NotificationCallback",
    "NotificationTooLarge",
    "WebhookAlert",
    "WebhookPayload",
]
