"""Generated gRPC stubs of the Open Inference Protocol, KServe's v2 API (python -m paratrain_api.protogen)."""
