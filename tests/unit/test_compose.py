"""docker-compose.yml: the small fleet's wiring, parsed with PyYAML (no Docker engine runs here)."""

from pathlib import Path
from urllib.parse import urlparse

import yaml

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def role_of(service: dict) -> str | None:
    return service.get("environment", {}).get("LTX_ROLE")


def gpu_devices(service: dict) -> list[dict]:
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    return [device for device in devices if "gpu" in device.get("capabilities", [])]


API = [service for service in SERVICES.values() if role_of(service) == "api"]
WORKERS = [service for service in SERVICES.values() if role_of(service) == "worker"]


def test_a_database_an_s3_server_one_api_and_gpu_workers():
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["minio"]["image"].startswith("minio/minio:")
    assert len(API) == 1 and len(WORKERS) >= 2
    for node in API + WORKERS:  # the project's CUDA image, which runs `ltx-runtime serve` and reads LTX_ROLE
        assert node["build"] == {"context": ".", "dockerfile": "Dockerfile.cuda"}
    assert [service["image"] for service in SERVICES.values()].count("ltx-runtime:cuda") == len(API) + len(WORKERS)


def test_gpus_are_reserved_for_the_workers_only_one_distinct_gpu_each():
    assert not gpu_devices(API[0])
    devices = [gpu_devices(worker) for worker in WORKERS]
    assert all(len(reserved) == 1 and reserved[0]["driver"] == "nvidia" for reserved in devices)
    assert len({tuple(reserved[0]["device_ids"]) for reserved in devices}) == len(WORKERS)


def test_every_node_shares_one_store_and_one_media_location_that_compose_provides():
    shared = ("LTX_DATABASE_URL", "LTX_MEDIA_URL", "LTX_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    environments = [node["environment"] for node in API + WORKERS]
    for name in shared:
        assert len({environment[name] for environment in environments}) == 1, name
    environment = environments[0]
    database = urlparse(environment["LTX_DATABASE_URL"])
    postgres = SERVICES["postgres"]["environment"]
    assert database.scheme == "postgresql" and database.hostname == "postgres" and database.port == 5432
    assert (database.username, database.password, database.path) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], "/" + postgres["POSTGRES_DB"],
    )  # fmt: skip
    endpoint = urlparse(environment["LTX_S3_ENDPOINT_URL"])
    minio = SERVICES["minio"]["environment"]
    assert endpoint.hostname == "minio" and endpoint.port == 9000
    assert (environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"],
    )  # fmt: skip
    media = urlparse(environment["LTX_MEDIA_URL"])
    assert media.scheme == "s3" and f"fleet/{media.hostname}" in " ".join(SERVICES["minio-bucket"]["command"])
    for node in API + WORKERS:  # started once the database answers and the bucket exists
        assert node["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert node["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully"


def test_environment_names_are_settings_the_server_reads():
    known = {f"LTX_{name.upper()}" for name in Settings.model_fields}
    for node in API + WORKERS:
        names = {name for name in node["environment"] if name.startswith("LTX_")}
        assert names <= known, names - known


def test_the_api_is_published_with_keys_and_a_public_url_and_workers_get_weights():
    api = API[0]
    assert "8000:8000" in api["ports"]
    assert api["environment"]["LTX_API_KEYS"].startswith("${LTX_API_KEYS:?")  # compose refuses to start without
    assert urlparse(api["environment"]["LTX_PUBLIC_URL"].split(":-", 1)[1].rstrip("}")).port == 8000
    for worker in WORKERS:
        assert "ports" not in worker
        assert any(volume.endswith(":/weights:ro") for volume in worker["volumes"])
