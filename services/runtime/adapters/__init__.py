"""The runtime's adapters: MongoDB, the outbox and its relay, Kafka, topics, the gRPC
server and clients, and the hosts that run a service process. Services build on them;
they never import the platform (launcher, embedded infrastructure, demo)."""
