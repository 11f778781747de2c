"""The audit trail: typed events, written in batches to the database and the log."""
