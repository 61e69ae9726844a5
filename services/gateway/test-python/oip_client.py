"""Open Inference Protocol (KServe v2) client test of the ch8 gateway, in Python.

The stubs are generated at run time, into a temporary directory, from the public protocol definition
(proto/inference/grpc_service.proto) with grpc_tools.protoc: nothing of the gateway's own code is used.

Usage: python3 oip_client.py PROTO_DIR ADDRESS MODEL
Prints one JSON document on standard output with what the server answered; assertions about the protocol itself
(status codes, echoed id, raw output layout) fail here with a message, the values are checked by the caller.
"""
import json
import os
import struct
import sys
import tempfile

import grpc
from grpc_tools import protoc


def generate(proto_dir, out_dir):
    proto = os.path.join(proto_dir, "inference", "grpc_service.proto")
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", proto])
    if rc != 0:
        raise SystemExit(f"protoc failed with {rc}")
    sys.path.insert(0, out_dir)
    from inference import grpc_service_pb2, grpc_service_pb2_grpc  # noqa: E402

    return grpc_service_pb2, grpc_service_pb2_grpc


def raw_bytes(items):
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def split_raw_bytes(buf):
    out, at = [], 0
    while at < len(buf):
        (n,) = struct.unpack_from("<I", buf, at)
        out.append(buf[at + 4 : at + 4 + n].decode("utf-8"))
        at += 4 + n
    assert at == len(buf), "raw BYTES output does not end on an element"
    return out


def outputs_of(resp):
    """Decodes raw_output_contents by the outputs' datatypes, as Triton's clients do."""
    assert len(resp.raw_output_contents) == len(resp.outputs), "one raw buffer per output"
    got = {}
    for tensor, raw in zip(resp.outputs, resp.raw_output_contents):
        assert not tensor.HasField("contents"), "outputs are answered in raw_output_contents only"
        n = list(tensor.shape)
        if tensor.datatype == "FP32":
            assert len(raw) == 4 * n[0], f"{tensor.name}: {len(raw)} bytes for shape {n}"
            got[tensor.name] = {"datatype": "FP32", "shape": n, "values": list(struct.unpack(f"<{n[0]}f", raw))}
        elif tensor.datatype == "BYTES":
            values = split_raw_bytes(raw)
            assert len(values) == n[0]
            got[tensor.name] = {"datatype": "BYTES", "shape": n, "values": values}
        else:
            raise AssertionError(f"unexpected datatype {tensor.datatype}")
    return got


def expect_code(fn, code, what):
    try:
        fn()
    except grpc.RpcError as e:
        assert e.code() == code, f"{what}: expected {code}, got {e.code()} {e.details()}"
        return e.details()
    raise AssertionError(f"{what}: expected {code}, the call succeeded")


def main():
    proto_dir, address, model = sys.argv[1], sys.argv[2], sys.argv[3]
    result = {}
    with tempfile.TemporaryDirectory() as out_dir:
        pb, pb_grpc = generate(proto_dir, out_dir)
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            result["live"] = stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
            result["ready"] = stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
            result["model_ready"] = stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=10).ready
            result["unknown_model_ready"] = stub.ModelReady(pb.ModelReadyRequest(name="no-such-model"), timeout=10).ready
            meta = stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
            result["server_metadata"] = {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}
            mm = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=10)
            tensor = lambda t: {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}  # noqa: E731
            result["model_metadata"] = {
                "name": mm.name,
                "versions": list(mm.versions),
                "platform": mm.platform,
                "inputs": [tensor(t) for t in mm.inputs],
                "outputs": [tensor(t) for t in mm.outputs],
            }

            texts = ["I loved it!", "It wasn't bad.", "qwxz"]
            encoded = [t.encode("utf-8") for t in texts]

            # Typed contents.
            typed = pb.ModelInferRequest(model_name=model, id="typed-1")
            inp = typed.inputs.add(name="TEXT", datatype="BYTES", shape=[len(texts)])
            inp.contents.bytes_contents.extend(encoded)
            resp = stub.ModelInfer(typed, timeout=10)
            assert resp.id == "typed-1", f"id not echoed: {resp.id!r}"
            result["typed"] = {"model_name": resp.model_name, "model_version": resp.model_version, "outputs": outputs_of(resp)}

            # raw_input_contents (4-byte little-endian length prefixes), one requested output.
            raw = pb.ModelInferRequest(model_name=model, id="raw-2")
            raw.inputs.add(name="TEXT", datatype="BYTES", shape=[len(texts)])
            raw.outputs.add(name="PROBABILITY")
            raw.raw_input_contents.append(raw_bytes(encoded))
            resp = stub.ModelInfer(raw, timeout=10)
            assert resp.id == "raw-2", f"id not echoed: {resp.id!r}"
            assert [o.name for o in resp.outputs] == ["PROBABILITY"], "only the requested output"
            result["raw"] = {"model_name": resp.model_name, "model_version": resp.model_version, "outputs": outputs_of(resp)}

            # Bad input: status codes and messages.
            errors = {}
            bad = pb.ModelInferRequest(model_name=model)
            bad.inputs.add(name="TEXT", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
            errors["wrong_datatype"] = expect_code(lambda: stub.ModelInfer(bad, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "FP32 input")
            bad = pb.ModelInferRequest(model_name=model)
            bad.inputs.add(name="TEXT", datatype="BYTES", shape=[2, 1])
            bad.raw_input_contents.append(raw_bytes([b"good", b"bad"]))
            errors["wrong_shape"] = expect_code(lambda: stub.ModelInfer(bad, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "shape [2,1]")
            bad = pb.ModelInferRequest(model_name=model)
            bad.inputs.add(name="TEXT", datatype="BYTES", shape=[2])
            bad.raw_input_contents.append(struct.pack("<I", 4) + b"good" + struct.pack("<I", 99) + b"bad")
            errors["bad_prefix"] = expect_code(lambda: stub.ModelInfer(bad, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "length prefix")
            bad = pb.ModelInferRequest(model_name=model)
            bad.inputs.add(name="TEXT", datatype="BYTES", shape=[3])
            bad.raw_input_contents.append(raw_bytes([b"good", b"bad"]))
            errors["count_mismatch"] = expect_code(lambda: stub.ModelInfer(bad, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "count")
            bad = pb.ModelInferRequest(model_name=model)
            bad.inputs.add(name="TEXT", datatype="BYTES", shape=[2]).contents.bytes_contents.extend([b"good", b"   "])
            errors["blank_text"] = expect_code(lambda: stub.ModelInfer(bad, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "blank text")
            unknown = pb.ModelInferRequest(model_name="no-such-model")
            unknown.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"good")
            errors["unknown_model"] = expect_code(lambda: stub.ModelInfer(unknown, timeout=10), grpc.StatusCode.NOT_FOUND, "unknown model")
            errors["unknown_metadata"] = expect_code(
                lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="no-such-model"), timeout=10),
                grpc.StatusCode.NOT_FOUND,
                "metadata of an unknown model",
            )
            # A method of the protocol's larger (Triton) service that this server does not implement.
            index = channel.unary_unary(
                "/inference.GRPCInferenceService/RepositoryIndex",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            errors["unimplemented"] = expect_code(lambda: index(b"", timeout=10), grpc.StatusCode.UNIMPLEMENTED, "RepositoryIndex")
            result["errors"] = errors
            # Still serving after the bad calls.
            ok = pb.ModelInferRequest(model_name=model)
            ok.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"great movie")
            result["after_errors"] = outputs_of(stub.ModelInfer(ok, timeout=10))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
