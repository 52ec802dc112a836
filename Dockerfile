# syntax=docker/dockerfile:1
# The one paratrain image: orchestrator, worker, validator, devnet and the Ray nodes all run it.
#   CPU:  docker build -t paratrain:0.1.0 .
#   GPU:  docker build --build-arg VARIANT=gpu -t paratrain:0.1.0-gpu .
# The GPU variant differs only by its torch wheel (CUDA build; the CUDA runtime comes inside the
# wheel's nvidia-* dependencies, the driver from the node). Keys are never baked in: they are
# mounted from Kubernetes Secrets at run time (docs/deployment.md).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_GPU_INDEX=https://download.pytorch.org/whl/cu128
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/paratrain/bin:$PATH
RUN python -m venv /opt/paratrain
# torch first, from the index of the chosen variant; the project's `train` extra then finds it installed
RUN case "${VARIANT}" in \
      cpu) index="${TORCH_CPU_INDEX}" ;; \
      gpu) index="${TORCH_GPU_INDEX}" ;; \
      *) echo "VARIANT must be cpu or gpu, not ${VARIANT}" >&2; exit 1 ;; \
    esac \
 && pip install --no-cache-dir --index-url "${index}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY devnet/ devnet/
COPY runtime_bindings/ runtime_bindings/
COPY orchestrator/ orchestrator/
COPY workers/ workers/
COPY paratrain/ paratrain/
COPY paratrain_api/ paratrain_api/
# the project itself, with fl (Flower) for the aggregator and data-owner roles of federated tasks
# (DL3013 asks for a version pin; its dependencies are pinned in pyproject.toml)
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[train,fl]" \
 && python -c "import torch, ray, flwr, paratrain.cli, paratrain_api.v1.worker_pb2; print('torch', torch.__version__, 'ray', ray.__version__)"

FROM ${PYTHON_IMAGE}
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="paratrain" \
      org.opencontainers.image.description="paratrain (${VARIANT}): devnet, orchestrator, worker, validator, Ray node" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 paratrain \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/paratrain --create-home \
      --shell /usr/sbin/nologin paratrain
COPY --from=build /opt/paratrain /opt/paratrain
ENV PATH=/opt/paratrain/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/paratrain
USER 10001:10001
WORKDIR /home/paratrain
# gRPC worker API, Prometheus metrics, devnet JSON-RPC
EXPOSE 50051 9615 9944
ENTRYPOINT ["paratrain"]
CMD ["--help"]
