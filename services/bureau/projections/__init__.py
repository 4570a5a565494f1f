"""The bureau's read model: one projection per bounded context (booth, expo, warehouse),
fed by a dispatcher that routes each event by its payload type, older payload
versions upcast to the current one first (upcast.py).

Pure state: no I/O, no pymongo, no grpc; the projections read protobuf payloads
because that is what the domain services publish."""
