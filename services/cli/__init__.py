"""`chuhai`: the command line of the platform's people: exporters, buyers, warehouse
operators and the commerce bureau, each a command group over the public gRPC APIs, plus
`events` to read the event topics."""
