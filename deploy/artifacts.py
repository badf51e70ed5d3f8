"""Upload a model directory to an S3 prefix, the layout SageMaker mounts at /opt/ml/model.

SageMaker can mount an *uncompressed* S3 prefix (``ModelDataSource.S3DataSource`` with
``CompressionType: None``) instead of unpacking a ``model.tar.gz``; for LLM weights that skips a
multi-GB tarball and its extraction at start-up, which is why JumpStart's TGI models ship this way.
"""

from __future__ import annotations

import os
from pathlib import Path


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
