"""Tools for development and the demo: the Metered emulator, and the whole loop played end to end.

The web app never imports this package when it starts: `flask emulator` and `flask demo`
(webhooks/cli.py) import it inside the command.
"""
