"""Between the Open Inference Protocol's messages and numpy arrays, in one module (as Flower keeps its serde):
bounded, so a request cannot make the server allocate more than MAX_ELEMENTS values."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from paratrain_api.inference import grpc_predict_v2_pb2 as v2

MAX_ELEMENTS = 1 << 20
_DTYPES = {"FP32": (np.float32, "fp32_contents"), "FP64": (np.float64, "fp64_contents"),
           "INT64": (np.int64, "int64_contents"), "INT32": (np.int32, "int_contents")}


class TensorError(ValueError):
    """A request tensor this server cannot take (the servicer answers INVALID_ARGUMENT)."""


def decode_inputs(request: Any, expected: Sequence[Any]) -> dict[str, np.ndarray]:
    """The request's input tensors as arrays of the model's input dtypes, checked against `expected`."""
    specs = {spec.name: spec for spec in expected}
    if len(request.inputs) != len(specs):
        raise TensorError(f"the model takes {len(specs)} input(s): {', '.join(specs)}")
    if request.raw_input_contents and len(request.raw_input_contents) != len(request.inputs):
        raise TensorError("raw_input_contents needs one entry per input")
    arrays = {}
    for position, tensor in enumerate(request.inputs):
        spec = specs.get(tensor.name)
        if spec is None:
            raise TensorError(f"unknown input {tensor.name!r}; the model takes {', '.join(specs)}")
        shape = tuple(int(d) for d in tensor.shape)
        if len(shape) != len(spec.shape) or any(d < 0 for d in shape) or any(
                want != -1 and d != want for d, want in zip(shape, spec.shape)):
            raise TensorError(f"input {tensor.name!r} has shape {list(shape)}; the model takes {list(spec.shape)}")
        count = int(np.prod(shape)) if shape else 1
        if count > MAX_ELEMENTS:
            raise TensorError(f"input {tensor.name!r} has {count} elements, more than {MAX_ELEMENTS}")
        if tensor.datatype not in _DTYPES:
            raise TensorError(f"datatype {tensor.datatype!r} is not one of {', '.join(_DTYPES)}")
        dtype, field = _DTYPES[tensor.datatype]
        if request.raw_input_contents:
            raw = request.raw_input_contents[position]
            if len(raw) != count * np.dtype(dtype).itemsize:
                raise TensorError(f"input {tensor.name!r}: {len(raw)} raw bytes for {count} {tensor.datatype}")
            values = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        else:
            contents = getattr(tensor.contents, field)
            if len(contents) != count:
                raise TensorError(f"input {tensor.name!r}: {len(contents)} values for shape {list(shape)}")
            values = np.asarray(contents, dtype=dtype)
        arrays[tensor.name] = values.reshape(shape).astype(_DTYPES[spec.datatype][0], copy=False)
    return arrays


def encode_outputs(model: Any, request_id: str, outputs: dict[str, np.ndarray]) -> Any:
    """The response: every output in the datatype the model's metadata declares, as raw little-endian bytes."""
    response = v2.ModelInferResponse(model_name=model.name, model_version=model.version, id=request_id)
    for spec in model.outputs:
        array = np.ascontiguousarray(outputs[spec.name], dtype=np.dtype(_DTYPES[spec.datatype][0]).newbyteorder("<"))
        response.outputs.add(name=spec.name, datatype=spec.datatype, shape=list(array.shape))
        response.raw_output_contents.append(array.tobytes())
    return response


def encode_input(name: str, array: np.ndarray) -> Any:
    """A client's request tensor (FP32, raw bytes): what `paratrain infer` sends."""
    values = np.ascontiguousarray(array, dtype="<f4")
    return v2.ModelInferRequest.InferInputTensor(name=name, datatype="FP32", shape=list(values.shape)), \
        values.tobytes()


def decode_outputs(response: Any) -> dict[str, np.ndarray]:
    """A response's output tensors (raw or in contents) as arrays."""
    out = {}
    for position, tensor in enumerate(response.outputs):
        dtype, field = _DTYPES[tensor.datatype]
        if response.raw_output_contents:
            values = np.frombuffer(response.raw_output_contents[position], dtype=np.dtype(dtype).newbyteorder("<"))
        else:
            values = np.asarray(getattr(tensor.contents, field), dtype=dtype)
        out[tensor.name] = values.reshape(tuple(tensor.shape))
    return out


def tensor_metadata(specs: Sequence[Any]) -> list[Any]:
    return [v2.ModelMetadataResponse.TensorMetadata(name=s.name, datatype=s.datatype, shape=list(s.shape))
            for s in specs]


__all__ = ["MAX_ELEMENTS", "TensorError", "decode_inputs", "decode_outputs", "encode_input", "encode_outputs",
           "tensor_metadata"]
