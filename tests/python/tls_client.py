"""A Python grpcio client of a Rapport server over TLS, and a look at the certificate it shows.

    tls_client.py call ADDR CA|- [CERT KEY]
        Checks grpc.health.v1 and lists the services by reflection, over TLS trusting CA
        (showing CERT/KEY when given), or in plaintext when CA is "-". Prints one JSON
        object: {"health": "SERVING", "services": [...]} or {"error": "CODE: details"}.

    tls_client.py subject ADDR CA CERT KEY
        Prints the subject common name of the certificate the server presents.
"""

import json
import socket
import ssl
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def call(addr, ca, cert=None, key=None):
    if ca == "-":
        channel = grpc.insecure_channel(addr)
    else:
        read = lambda p: open(p, "rb").read()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(ca),
            private_key=read(key) if key else None,
            certificate_chain=read(cert) if cert else None,
        )
        channel = grpc.secure_channel(
            addr, credentials, options=[("grpc.ssl_target_name_override", "localhost")]
        )
    try:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        requests = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            requests, timeout=5
        )
        services = [s.name for a in answers for s in a.list_services_response.service]
        result = {
            "health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status),
            "services": services,
        }
    except grpc.RpcError as e:
        result = {"error": f"{e.code().name}: {e.details()}"}
    print(json.dumps(result))


def subject(addr, ca, cert, key):
    host, port = addr.rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            fields = dict(x[0] for x in tls.getpeercert()["subject"])
    print(fields["commonName"])


if __name__ == "__main__":
    if sys.argv[1] == "call":
        call(*sys.argv[2:])
    else:
        subject(*sys.argv[2:])
