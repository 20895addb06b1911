"""What the command-line entry points share: flags generated from the config dataclasses and
the one-line exit for user errors."""
