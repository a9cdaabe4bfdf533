#!/usr/bin/python3
"""Drives specserve's public gRPC API from Python, with stubs generated from
proto/specserve/v1/generation.proto alone (Debian's python3-grpcio and
python3-grpc-tools; its protoc predates proto3 `optional`, which the .proto therefore
does not use).

  client_test.py ADDRESS --proto-dir=DIR [--prompt-ids=1,2,3 --expect=4,5,6] [--max-new-tokens=N]
"""
import argparse
import importlib
import os
import sys
import tempfile

from grpc_tools import protoc


def generate_stubs(proto_dir, out_dir):
    rc = protoc.main([
        "grpc_tools.protoc", "-I" + proto_dir, "--python_out=" + out_dir,
        "--grpc_python_out=" + out_dir, os.path.join(proto_dir, "specserve/v1/generation.proto"),
    ])
    if rc != 0:
        raise RuntimeError("protoc failed on generation.proto (exit %d)" % rc)
    for d in ("specserve", "specserve/v1"):
        open(os.path.join(out_dir, d, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)
    pb = importlib.import_module("specserve.v1.generation_pb2")
    grpc_pb = importlib.import_module("specserve.v1.generation_pb2_grpc")
    return pb, grpc_pb


passed = 0
failed = 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print("ok   " + name)
    except Exception as e:  # report every failure, keep going
        failed += 1
        print("FAIL %s: %r" % (name, e))


def main():
    import grpc

    ap = argparse.ArgumentParser()
    ap.add_argument("address")
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--prompt-ids", default="")
    ap.add_argument("--expect", default="")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as out_dir:
        pb, grpc_pb = generate_stubs(args.proto_dir, out_dir)
        channel = grpc.insecure_channel(args.address)
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = grpc_pb.GenerationStub(channel)

        def request():
            r = pb.GenerateRequest(max_new_tokens=args.max_new_tokens, ignore_eos=True)
            if args.prompt_ids:
                r.tokens.ids.extend(int(x) for x in args.prompt_ids.split(","))
            else:
                r.text = "Once upon a time".encode()
            return r

        info = {}

        def model_info():
            i = stub.ModelInfo(pb.ModelInfoRequest(), timeout=30)
            assert i.vocab_size > 0, i
            assert i.max_context > 0, i
            info["vocab"] = i.vocab_size

        check("ModelInfo", model_info)

        result = {}

        def generate():
            r = stub.Generate(request(), timeout=60)
            assert len(r.tokens) == args.max_new_tokens, r
            assert r.stats.finish_reason == pb.FINISH_REASON_LENGTH, r.stats
            if args.expect:
                assert list(r.tokens) == [int(x) for x in args.expect.split(",")], list(r.tokens)
            result["tokens"], result["text"] = list(r.tokens), r.text

        check("Generate (greedy)", generate)

        def stream():
            tokens, text, final = [], "", None
            for m in stub.GenerateStream(request(), timeout=60):
                tokens.extend(m.tokens)
                text += m.text
                if m.HasField("final"):
                    final = m.final
            assert final is not None and final.generated_tokens == args.max_new_tokens, final
            assert tokens == result["tokens"] and text == result["text"], (tokens, text)

        check("GenerateStream equals Generate", stream)

        def max_new_tokens_presence():
            r = pb.GenerateRequest(ignore_eos=True)
            r.tokens.ids.extend([1, 2, 3] if info.get("vocab", 0) > 3 else [0])
            assert not r.HasField("max_new_tokens")  # unset: the server's default
            r.max_new_tokens = 0
            assert r.HasField("max_new_tokens")
            out = stub.Generate(r, timeout=60)
            assert len(out.tokens) == 0, out

        check("max_new_tokens presence (oneof)", max_new_tokens_presence)

        def invalid_argument():
            r = pb.GenerateRequest(max_new_tokens=4)
            r.tokens.ids.extend([10 ** 9])
            try:
                stub.Generate(r, timeout=30)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.code()
                assert "vocabulary" in e.details(), e.details()
                return
            raise AssertionError("no error for a token outside the vocabulary")

        check("INVALID_ARGUMENT names the problem", invalid_argument)

        def tokenize_roundtrip():
            t = stub.Tokenize(pb.TokenizeRequest(text="Hello world".encode(), add_bos=False), timeout=30)
            d = stub.Detokenize(pb.DetokenizeRequest(ids=t.ids), timeout=30)
            assert len(t.ids) > 0
            assert d.text.strip() != "" or info.get("vocab", 0) < 400

        check("Tokenize / Detokenize", tokenize_roundtrip)

    print("python client: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
