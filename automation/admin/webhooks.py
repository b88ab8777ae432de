"""Admin for outgoing webhook endpoints and their deliveries."""
