"""The versions that the federated engine and the rest of the project must agree on.

Flower 1.42.0 needs protobuf < 7, which holds grpcio-tools at 1.81.1 (1.82+ need protobuf >= 7.35.1), and
its `simulation` extra would pin Ray 2.55.1: the project installs flwr without it and keeps Ray 2.60. A
`pip install` that silently moved any of these would break either the stubs or the Ray clusters.
"""

from importlib.metadata import version

from packaging.version import Version


def test_ray_is_not_downgraded_for_flower() -> None:
    assert Version(version("ray")).release[:2] == (2, 60)


def test_flower_is_the_pinned_release() -> None:
    assert version("flwr") == "1.42.0"


def test_protobuf_runtime_is_the_one_flower_allows() -> None:
    assert Version("6.33.6") <= Version(version("protobuf")) < Version("7")


def test_generated_stubs_load_on_this_protobuf_runtime() -> None:
    from paratrain_api.v1 import worker_pb2, worker_pb2_grpc

    assert worker_pb2.DESCRIPTOR.package == "paratrain.v1"
    assert hasattr(worker_pb2_grpc, "WorkerServiceStub")


def test_opacus_is_the_pinned_release_on_the_cpu_torch() -> None:
    # Opacus 1.6.0 is the release checked against torch 2.13.0 (docs/design/private.md, fact 6); a newer
    # torch pulled in by an unpinned upgrade would be a CUDA build of several GB on these machines.
    assert version("opacus") == "1.6.0"
    assert version("torch").startswith("2.13.0")
