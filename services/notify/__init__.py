"""Notify service: tells exporters, buyers, warehouse operators and the bureau's officers
what the platform's events mean for them — in the platform (ListNotifications, MarkRead,
WatchNotifications), by signed webhook and by e-mail, in Chinese or English, as each
reader's preferences say.

It consumes every domain topic in its own consumer group and keeps its own database;
the services that record the events never wait for it, and while it is down they carry
on: back, it catches up from the topics. Its guarantees:

- Exactly once per reader and event: a notification's id is derived from its source
  (the event, or a natural key such as a fair's filled quota), its reader and its kind,
  and every write of event handling is idempotent, so a redelivered or replayed event
  never notifies twice; offsets are committed only after a batch is handled.
- A delivery waiting for its channel (quiet hours, a receiver down, retries with
  backoff) is a document: it survives restarts and is claimed before it is sent, so
  several instances never send it twice at once.
- Privacy: a notification carries only what its reader may see; exhibitors learn a
  buyer's country, never its company or contact.
- A record it cannot read goes to its topic's .dlq twin; MongoDB or Kafka away is
  waited out, never dead-lettered."""
