"""Bureau service: live aggregates of every event stream for the commerce bureau."""
