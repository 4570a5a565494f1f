"""The runtime's pure kernel: errors, validation, standards codes and the clock.

Domains may import it; it imports nothing of the platform's I/O (no gRPC, protobuf,
MongoDB or Kafka), which `make lint` checks with import-linter."""
