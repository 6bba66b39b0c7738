"""A non-Rust client of Rapport: Python grpcio with stubs generated from proto/ at run time.

Ingests one event, reads the customer's health score back, checks grpc.health.v1 and lists
the services through server reflection. Exits non-zero on any failure.

usage: client.py PROTO_DIR OUT_DIR INGESTION_ADDR SCORING_ADDR API_KEY
"""

import datetime
import pathlib
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_tools import protoc


def generate(proto_dir: pathlib.Path, out_dir: pathlib.Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = [str(p.relative_to(proto_dir)) for p in proto_dir.rglob("*.proto")]
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *protos]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    sys.path.insert(0, str(out_dir))


def main() -> None:
    proto_dir, out_dir, ingestion_addr, scoring_addr, api_key = sys.argv[1:6]
    generate(pathlib.Path(proto_dir), pathlib.Path(out_dir))
    from google.protobuf import timestamp_pb2
    from rapport.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
    from rapport.scoring.v1 import scoring_pb2, scoring_pb2_grpc

    auth = [("authorization", f"Bearer {api_key}")]
    occurred = timestamp_pb2.Timestamp()
    occurred.FromDatetime(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1))

    with grpc.insecure_channel(ingestion_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="rapport.ingestion.v1.IngestionService"), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING, health

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        services = {s.name for a in answers for s in a.list_services_response.service}
        assert "rapport.ingestion.v1.IngestionService" in services, services

        event = ingestion_pb2.Event(
            event_id="py-1",
            customer_id="python-customer",
            occurred_at=occurred,
            order=ingestion_pb2.Order(order_id="py-o-1", amount=42.5, currency="USD", items=1),
        )
        bad = ingestion_pb2.Event(event_id="py-2", customer_id="python-customer", occurred_at=occurred,
                                  survey=ingestion_pb2.Survey(kind=ingestion_pb2.SURVEY_KIND_NPS, score=11))
        answer = ingestion_pb2_grpc.IngestionServiceStub(channel).Ingest(
            ingestion_pb2.IngestRequest(events=[event, bad]), metadata=auth, timeout=10
        )
        verdicts = [r.verdict for r in answer.results]
        assert verdicts == [ingestion_pb2.VERDICT_ACCEPTED, ingestion_pb2.VERDICT_REJECTED], answer
        assert answer.results[1].field == "survey.score", answer

    with grpc.insecure_channel(scoring_addr) as channel:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        deadline = time.monotonic() + 30
        while True:
            try:
                score = stub.GetHealth(scoring_pb2.GetHealthRequest(customer_id="python-customer"), metadata=auth, timeout=10)
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        monetary = next(m for m in score.measures if m.measure == "spend_365d")
        assert abs(monetary.value - 42.5) < 1e-9, score
        print(f"python client: {score.customer_id} scored {score.score:.1f}")


if __name__ == "__main__":
    main()
