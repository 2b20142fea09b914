"""SMS invitations and reminders: an outbox in the database, gateways (console, Twilio), the worker's jobs."""
