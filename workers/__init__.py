"""Rollcall's core: settings, storage, the Metered client, attendance maths and the RQ jobs.

Nothing here imports Flask; the web process (`webhooks`) builds on this package, never the reverse.
"""
