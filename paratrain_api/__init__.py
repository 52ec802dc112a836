"""The contract that both sides of the wire compute alike, at the bottom of the layers: the gRPC stubs (v1/,
protogen) that server and clients import, the default endpoints, and the integer semantics of the collaborative
models (collab_classifiers) that the chain runs and the prediction market's validators replay off chain."""
