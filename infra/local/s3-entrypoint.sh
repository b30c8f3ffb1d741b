#!/bin/sh
# SeaweedFS (master, volume, filer, S3 on :9000) with one S3 identity from MinIO's variables; data in /data.
set -eu
conf=/tmp/s3.json
printf '{"identities": [{"name": "root", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' \
  "${MINIO_ROOT_USER:?set MINIO_ROOT_USER}" "${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD}" >"$conf"
exec weed server -dir=/data -s3 -s3.port=9000 -s3.config="$conf" -master.volumeSizeLimitMB=256 \
  -s3.port.iceberg=0 -s3.port.lance=0
