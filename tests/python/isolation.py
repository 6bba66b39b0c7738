"""Every RPC a server advertises through reflection, called with one tenant's key and the
identifiers of another tenant's data.

    isolation.py KEY IDS_JSON ADDR...

IDS_JSON maps field names to the other tenant's identifiers, e.g.
{"customer_id": "acme-c1", "id": "42", "tenant": "acme"}. For each unary and server-streaming
method of every service each address advertises, builds a request whose fields with those
names (at any depth, one value in a repeated field) carry the identifiers, calls it with KEY
and prints one JSON object per line: the method, the status code name, and what came back
(the messages as JSON, or the status message). Events are left empty: the caller must not
create customers under the other tenant's ids, or its own answers would name them.
"""

import json
import sys

import grpc
from google.protobuf import descriptor, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import proto_reflection_descriptor_database

SKIP_SERVICES = ("grpc.health.", "grpc.reflection.")
NOT_FILLED = ("rapport.ingestion.v1.Event",)
INTS = (
    descriptor.FieldDescriptor.TYPE_INT32,
    descriptor.FieldDescriptor.TYPE_INT64,
    descriptor.FieldDescriptor.TYPE_UINT32,
    descriptor.FieldDescriptor.TYPE_UINT64,
)


def fill(msg, ids, depth=0):
    """Sets the fields of `msg` that `ids` names; whether it set any."""
    touched = False
    for field in msg.DESCRIPTOR.fields:
        repeated = field.is_repeated
        if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3 or field.message_type.full_name in NOT_FILLED:
                continue
            if field.message_type.GetOptions().map_entry:
                continue
            if repeated:
                child = getattr(msg, field.name).add()
                if not fill(child, ids, depth + 1):
                    getattr(msg, field.name).pop()
                else:
                    touched = True
            else:
                child = type(getattr(msg, field.name))()
                if fill(child, ids, depth + 1):
                    getattr(msg, field.name).CopyFrom(child)
                    touched = True
            continue
        value = ids.get(field.name)
        if value is None:
            continue
        if field.type in INTS:
            try:
                value = int(value)
            except ValueError:
                continue
        elif field.type != descriptor.FieldDescriptor.TYPE_STRING:
            continue
        if repeated:
            getattr(msg, field.name).append(value)
        else:
            setattr(msg, field.name, value)
        touched = True
    return touched


def main():
    key, ids_json, *addrs = sys.argv[1:]
    ids = json.loads(ids_json)
    metadata = [("authorization", f"Bearer {key}")]
    for addr in addrs:
        channel = grpc.insecure_channel(addr)
        database = proto_reflection_descriptor_database.ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        for service_name in database.get_services():
            if service_name.startswith(SKIP_SERVICES):
                continue
            service = pool.FindServiceByName(service_name)
            for method in service.methods:
                if method.client_streaming:
                    continue
                request_class = message_factory.GetMessageClass(method.input_type)
                response_class = message_factory.GetMessageClass(method.output_type)
                request = request_class()
                if method.input_type.full_name not in NOT_FILLED:
                    fill(request, ids)
                path = f"/{service_name}/{method.name}"
                serialize = request_class.SerializeToString
                deserialize = response_class.FromString
                out = {"method": path, "request": json_format.MessageToJson(request)}
                try:
                    if method.server_streaming:
                        call = channel.unary_stream(path, serialize, deserialize)
                        answers = []
                        try:
                            for answer in call(request, metadata=metadata, timeout=2):
                                answers.append(json_format.MessageToJson(answer))
                            out["code"] = "OK"
                        except grpc.RpcError as e:
                            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                                raise
                            out["code"] = "OK"
                        out["response"] = "\n".join(answers)
                    else:
                        call = channel.unary_unary(path, serialize, deserialize)
                        answer = call(request, metadata=metadata, timeout=20)
                        out["code"] = "OK"
                        out["response"] = json_format.MessageToJson(answer)
                except grpc.RpcError as e:
                    out["code"] = e.code().name
                    out["response"] = e.details() or ""
                print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
