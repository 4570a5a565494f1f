"""The demo scenario: the Xuchang case played through the public gRPC APIs."""
