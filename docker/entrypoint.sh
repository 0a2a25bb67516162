#!/bin/sh
# Entry point of the dynamix images. /app is a DVC repository without git (core.no_scm is
# set at build time); when DVC_REMOTE_URL is set (the compose stack: s3://dvc/dynamix on
# MinIO) it becomes the default remote, with AWS_ENDPOINT_URL as its endpoint. Credentials
# stay in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY): never in .dvc/config.
set -eu
if [ -n "${DVC_REMOTE_URL:-}" ]; then
  dvc remote add -q --local --force --default storage "$DVC_REMOTE_URL"
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
    dvc remote modify -q --local storage endpointurl "$AWS_ENDPOINT_URL"
  fi
fi
exec "$@"
