"""Outbox relays: notifications handed to other systems (webhooks, RabbitMQ, Redis Streams)."""
