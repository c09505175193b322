"""Notifications: what a final session owes (ledger), the emails (emails), how they go out (senders)."""
