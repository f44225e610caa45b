"""The subcommittee mailer: each national-subcommittee routing, e-mailed once per version."""
