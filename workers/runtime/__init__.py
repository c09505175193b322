"""Runtime: what each process shares: settings, connections, its Runtime, log redaction, metrics, migrate."""
