"""The shared runtime every Chuhai service is built on: settings, logging, the gRPC
server bootstrap, MongoDB access, the transactional outbox and its relay, topic
provisioning and the embedded infrastructure launcher."""
