#!/usr/bin/env bash
# Create the object storage buckets jointssl uses, with the AWS CLI, on AWS S3 or on any S3 endpoint
# (AWS_ENDPOINT_URL; for the dev SeaweedFS: kubectl -n jointssl port-forward svc/seaweedfs 8333:8333 and
# AWS_ENDPOINT_URL=http://127.0.0.1:8333 with its admin keys). Idempotent: existing buckets are kept.
#   jointssl  jobs' storage.root (configs/k8s-*.yaml: s3://jointssl/cluster): world, index, chips cache,
#             checkpoints, evaluation, inference
#   mlflow    MLflow's artifacts (k8s/base/mlflow: MLFLOW_ARTIFACTS_DESTINATION=s3://mlflow/artifacts)
# Bucket names are global on AWS: if these are taken, choose others and change them in those two places.
# Credentials per identity (least privilege): policy-jobs.json and policy-mlflow.json.
set -euo pipefail

JOBS_BUCKET="${JOBS_BUCKET:-jointssl}"
MLFLOW_BUCKET="${MLFLOW_BUCKET:-mlflow}"
REGION="${AWS_REGION:-us-east-1}"

endpoint=()
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
  endpoint=(--endpoint-url "$AWS_ENDPOINT_URL")
fi
location=()
if [ -z "${AWS_ENDPOINT_URL:-}" ] && [ "$REGION" != "us-east-1" ]; then
  location=(--create-bucket-configuration "LocationConstraint=$REGION")
fi

for bucket in "$JOBS_BUCKET" "$MLFLOW_BUCKET"; do
  if aws s3api head-bucket --bucket "$bucket" ${endpoint[@]+"${endpoint[@]}"} >/dev/null 2>&1; then
    echo "bucket $bucket: exists"
    continue
  fi
  aws s3api create-bucket --bucket "$bucket" --region "$REGION" ${endpoint[@]+"${endpoint[@]}"} ${location[@]+"${location[@]}"} >/dev/null
  if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
    # On AWS: never public, whatever a later policy says.
    aws s3api put-public-access-block --bucket "$bucket" --public-access-block-configuration \
      BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  fi
  echo "bucket $bucket: created"
done
