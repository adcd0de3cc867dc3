"""NATS JetStream: the card-transaction consumer and the outbox relay (see ``docs/stream.md``)."""
