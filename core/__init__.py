"""What every module shares: configuration, database, auth, errors, idempotency, audit, inbox,
scheduler, operations and the CLI. It imports nothing of the feature modules."""
