"""Model files between a directory and S3: upload to the prefix layout SageMaker mounts at
/opt/ml/model, and fetch it back for a local endpoint (`fetch_artifact`).

SageMaker can mount an *uncompressed* S3 prefix (``ModelDataSource.S3DataSource`` with
``CompressionType: None``) instead of unpacking a ``model.tar.gz``; for LLM weights that skips a
multi-GB tarball and its extraction at start-up, which is why JumpStart's TGI models ship this way.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``"s3://bucket/a/b/"`` -> ``("bucket", "a/b/")``; raises ValueError for anything else."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise ValueError(f"Not an S3 URI: {uri!r} (expected s3://bucket/prefix/)")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def normalize_prefix(prefix: str) -> str:
    """A key prefix without a leading slash and with exactly one trailing slash (or empty).

    The trailing slash matters: SageMaker treats ``S3Prefix`` as a raw key prefix, so
    ``models/tiny`` would also match ``models/tiny-v2/...``.
    """
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def upload_model_dir(local_dir: str | os.PathLike, bucket: str, prefix: str,
                     s3_client=None) -> str:
    """Upload every file under ``local_dir`` to ``s3://bucket/prefix/`` and return that URI.

    Relative paths are kept (``tokenizer/x.json`` -> ``prefix/tokenizer/x.json``) because the
    container reads the directory exactly as ``save_pretrained`` wrote it.
    """
    root = Path(local_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Model directory {str(root)!r} does not exist")
    files = sorted(path for path in root.rglob("*") if path.is_file())
    if not files:
        raise FileNotFoundError(f"Model directory {str(root)!r} contains no files")
    if s3_client is None:
        import boto3
        s3_client = boto3.client("s3")
    prefix = normalize_prefix(prefix)
    for path in files:
        s3_client.upload_file(str(path), bucket, prefix + path.relative_to(root).as_posix())
    return f"s3://{bucket}/{prefix}"


def fetch_artifact(url: str, dest: str | os.PathLike, s3_client=None) -> Path:
    """A model's or adapter's files as a local directory, the way SageMaker stages them.

    ``s3://bucket/key.tar.gz`` is downloaded and unpacked into ``dest``; any other ``s3://`` URL
    is a prefix whose objects are downloaded into ``dest`` with their relative paths; a local
    path (or ``file://`` URL) is used where it lies. Raises FileNotFoundError when nothing is there.
    """
    if not url.startswith("s3://"):
        path = Path(url[len("file://"):] if url.startswith("file://") else url).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{url} does not exist")
        return path.resolve()
    if s3_client is None:
        import boto3
        s3_client = boto3.client("s3")
    bucket, key = split_s3_uri(url)
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    if key.endswith((".tar.gz", ".tgz")):
        archive = root / "model.tar.gz"
        s3_client.download_file(bucket, key, str(archive))
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")  # no absolute paths, links or devices
        archive.unlink()
        return root
    prefix = normalize_prefix(key) if key else ""
    paginator = s3_client.get_paginator("list_objects_v2")
    keys = [item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    if not keys:
        raise FileNotFoundError(f"{url} holds no objects")
    for name in keys:
        target = root / name[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        s3_client.download_file(bucket, name, str(target))
    return root
