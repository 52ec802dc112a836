"""paratrain orchestrator: chain indexer, task scheduler and the gRPC worker API (docs/orchestrator.md)."""
