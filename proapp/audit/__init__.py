"""The audit trail: append-only, hash-chained records of every change, who made it, when and why."""
