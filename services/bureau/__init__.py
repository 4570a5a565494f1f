"""Bureau service: live figures of every event stream for the commerce bureau.

Why a journal of its own rather than Faust tables. Faust keeps table state in a
compacted changelog topic and recovers it by reading that changelog up to the end offset
the broker reports. The embedded broker (Tansu) answers ListOffsets "latest" with the
last batch's base offset + 1 instead of the high watermark, so that recovery stops short
and silently drops the tail of the table: figures would come back lower after a restart.
The bureau therefore keeps its state outside Kafka: the events each batch applied are
journaled in MongoDB before Faust commits the batch's offsets, and a snapshot of the
projections records how much of the journal it covers. Restoring needs no offsets at
all, which also makes a fresh in-memory broker refilled from the outboxes just another
redelivery, recognised by event_id. Faust still does what fits: the consumer group,
batching, the agent's lifecycle and the producer for dead letters and the stats topic.
"""
