"""Alarm notifications: e-mail (SMTP) and webhooks (JSON POST) on raise, clear and escalation."""
