"""Generated gRPC stubs of the paratrain.v1 contract (python -m paratrain_api.protogen)."""
