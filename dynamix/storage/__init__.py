"""S3-compatible object storage (AWS, MinIO) through boto3: the core's only boto3 adapter.

:mod:`dynamix.storage.s3` moves files and directories with checksums and atomic downloads;
:mod:`dynamix.storage.client` builds the client from ``params.yaml: storage``;
:mod:`dynamix.storage.cli` is ``dynamix s3 push|pull``. Nothing is imported here, so the
CLI can register ``dynamix s3`` without loading boto3.
"""
