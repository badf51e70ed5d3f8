"""A local endpoint fetches model and adapter artifacts the way SageMaker stages them (moto's S3)."""

from __future__ import annotations

import io
import tarfile

import boto3
import pytest

from aws_fixtures import REGION
from deploy.artifacts import fetch_artifact

FILES = {"adapter_config.json": b'{"r": 4}', "weights/adapter_model.safetensors": b"\x00" * 64}


@pytest.fixture
def bucket(aws):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="artifacts")
    for name, data in FILES.items():
        s3.put_object(Bucket="artifacts", Key=f"adapters/lora/{name}", Body=data)
    s3.put_object(Bucket="artifacts", Key="adapters/lora-v2/other.json", Body=b"{}")  # shares the prefix's start
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in FILES.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket="artifacts", Key="adapters/lora.tar.gz", Body=archive.getvalue())
    return s3


def files_under(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("url", ["s3://artifacts/adapters/lora", "s3://artifacts/adapters/lora/",
                                 "s3://artifacts/adapters/lora.tar.gz"])
def test_an_s3_prefix_or_archive_becomes_the_same_directory(bucket, tmp_path, url):
    assert files_under(fetch_artifact(url, tmp_path / "staged", bucket)) == FILES


def test_a_local_path_is_used_where_it_lies_and_nothing_is_a_clear_error(bucket, tmp_path):
    assert fetch_artifact(str(tmp_path), tmp_path / "unused") == tmp_path.resolve()
    assert fetch_artifact(f"file://{tmp_path}", tmp_path / "unused") == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="holds no objects"):
        fetch_artifact("s3://artifacts/adapters/none/", tmp_path / "staged", bucket)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fetch_artifact(str(tmp_path / "missing"), tmp_path / "staged")
