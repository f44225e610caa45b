"""A local SMTP server that keeps what it receives: the demo's stand-in for the ministry's relay."""
