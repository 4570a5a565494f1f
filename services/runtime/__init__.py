"""The shared runtime every Chuhai service is built on, in two layers:
``runtime.kernel`` (pure: errors, validation, standards codes, credit code, clock) and
``runtime.adapters`` (MongoDB, outbox and relay, Kafka, topics, gRPC, service host, the
use-case runner). See docs/architecture.md, "Layers"."""
