"""Callers' mistakes against every unary RPC of a running platform, found in proto/.

    caller_mistakes.py PROTO_DIR API_KEY ADDR...

For each unary RPC of the services the addresses serve (each address is tried for each
service; a method answered UNIMPLEMENTED with the key is skipped), sends an empty request, a request that is not
protobuf, and an empty request with a key nobody issued. Prints a JSON object: the number
of calls per status code name.
"""

import collections
import json
import os
import pathlib
import re
import sys

import grpc

RPC = re.compile(r"rpc\s+(\w+)\s*\(\s*(stream\s+)?[\w.]+\s*\)\s*returns\s*\(\s*(stream\s+)?[\w.]+\s*\)")


def unary_methods(proto_dir):
    for path in sorted(pathlib.Path(proto_dir).rglob("*.proto")):
        text = path.read_text()
        package = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
        for service, body in re.findall(r"service\s+(\w+)\s*\{(.*?)\n\}", text, re.S):
            for name, client_stream, server_stream in RPC.findall(body):
                if not client_stream and not server_stream:
                    yield f"/{package}.{service}/{name}"


def main():
    proto_dir, api_key, *addrs = sys.argv[1:]
    codes = collections.Counter()
    for addr in addrs:
        channel = grpc.insecure_channel(addr)
        for method in unary_methods(proto_dir):
            call = channel.unary_unary(method)
            answered = collections.Counter()
            for key, body in [(api_key, b""), (api_key, os.urandom(64) + b"\xff\xff"), ("not-a-key", b"")]:
                try:
                    call(body, metadata=[("authorization", f"Bearer {key}")], timeout=20)
                    answered["OK"] += 1
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                        # Not served at this address (a caller without a key hears only
                        # UNAUTHENTICATED, whatever the method).
                        answered.clear()
                        break
                    answered[e.code().name] += 1
            codes.update(answered)
    print(json.dumps(codes))


if __name__ == "__main__":
    main()
