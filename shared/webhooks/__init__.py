"""Webhooks: endpoints a tenant registers, the deliveries of its events to them (signed,
retried with backoff, logged attempt by attempt), and the rules on where they may go."""
