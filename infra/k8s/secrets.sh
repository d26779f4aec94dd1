#!/usr/bin/env bash
# The Secrets that k8s/ and infra/k8s reference by name, never by value. Creates each one that does not
# exist yet (existing ones are kept: regenerating a database password would lock MLflow out of its data);
# generated values never reach the terminal, the shell history or a process list.
#
#   infra/k8s/secrets.sh dev          # dev: generates everything, one S3 identity (the in-cluster store)
#   infra/k8s/secrets.sh prod         # prod: S3 keys per identity from the environment (below)
#   infra/k8s/secrets.sh mlflow-user  # after MLflow is up: creates the jobs' MLflow user
#
# prod reads JOBS_AWS_ACCESS_KEY_ID / JOBS_AWS_SECRET_ACCESS_KEY (the jobs' identity: policy-jobs.json)
# and MLFLOW_AWS_ACCESS_KEY_ID / MLFLOW_AWS_SECRET_ACCESS_KEY (the MLflow server's: policy-mlflow.json).
# A managed PostgreSQL instead of infra/k8s/mlflow-db: set MLFLOW_DB_HOST and MLFLOW_DB_PASSWORD (URL-safe).
#
#   Secret               keys                                               used by
#   jointssl-s3          AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY            Ray pods
#   mlflow-client        MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD  Ray pods
#   mlflow-s3            AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY            MLflow server
#   mlflow-db            password backend-store-uri                         MLflow server, mlflow-db
#   mlflow-auth          basic_auth.ini admin-password flask-secret-key     MLflow server
#   object-store-admin   AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY            dev SeaweedFS (dev only)
#   mlflow-tls           (TLS certificate of the gpu-prod Ingress: from cert-manager or your CA, not here)
set -euo pipefail

NS="${NAMESPACE:-jointssl}"
DB_HOST="${MLFLOW_DB_HOST:-mlflow-db.$NS.svc}"
DB_USER=mlflow

random() {  # 48 hex characters: URL-safe, so it can sit inside a database URI unescaped
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

create_secret() {  # NAME KEY=VALUE...: create the Secret unless it exists; values go through 0600 files
  local name=$1 dir pair
  shift
  if kubectl --namespace "$NS" get secret "$name" >/dev/null 2>&1; then
    echo "secret $name: exists, kept"
    return
  fi
  dir=$(umask 077 && mktemp -d)
  for pair in "$@"; do
    printf '%s' "${pair#*=}" >"$dir/${pair%%=*}"
  done
  kubectl --namespace "$NS" create secret generic "$name" --from-file="$dir" >/dev/null
  rm -rf "$dir"
  echo "secret $name: created"
}

secret_value() {  # NAME KEY: one value of an existing Secret
  kubectl --namespace "$NS" get secret "$1" -o "jsonpath={.data.${2//./\\.}}" | base64 -d
}

mlflow_secrets() {
  local db_password="${MLFLOW_DB_PASSWORD:-$(random)}" auth_ini
  auth_ini="[mlflow]
default_permission = READ
database_uri = postgresql+psycopg://$DB_USER:$db_password@$DB_HOST:5432/mlflow_auth
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"
  create_secret mlflow-db password="$db_password" \
    backend-store-uri="postgresql+psycopg://$DB_USER:$db_password@$DB_HOST:5432/mlflow"
  create_secret mlflow-auth basic_auth.ini="$auth_ini" admin-password="$(random)" flask-secret-key="$(random)"
  create_secret mlflow-client MLFLOW_TRACKING_USERNAME=jointssl MLFLOW_TRACKING_PASSWORD="$(random)"
}

create_mlflow_user() {  # the jobs' user, through MLflow's REST API as admin (port-forward to the Service)
  local port=15000 pf dir
  kubectl --namespace "$NS" port-forward svc/mlflow "$port:5000" >/dev/null 2>&1 &
  pf=$!
  dir=$(umask 077 && mktemp -d)
  trap 'kill "$pf" 2>/dev/null; rm -rf "$dir"' EXIT
  sleep 3
  printf 'user = "admin:%s"\n' "$(secret_value mlflow-auth admin-password)" >"$dir/curl.conf"
  printf '{"username": "%s", "password": "%s"}' "$(secret_value mlflow-client MLFLOW_TRACKING_USERNAME)" \
    "$(secret_value mlflow-client MLFLOW_TRACKING_PASSWORD)" |
    curl --fail-with-body --silent --show-error --config "$dir/curl.conf" \
      --header 'Content-Type: application/json' --data @- \
      "http://127.0.0.1:$port/api/2.0/mlflow/users/create" >/dev/null
  echo "MLflow user $(secret_value mlflow-client MLFLOW_TRACKING_USERNAME): created"
}

case "${1:-}" in
  dev)
    key="$(random)"
    key="jointssl${key:0:12}"
    secret="$(random)"
    create_secret object-store-admin AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret"
    key="$(secret_value object-store-admin AWS_ACCESS_KEY_ID)"
    secret="$(secret_value object-store-admin AWS_SECRET_ACCESS_KEY)"
    create_secret jointssl-s3 AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret"
    create_secret mlflow-s3 AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret"
    mlflow_secrets
    ;;
  prod)
    create_secret jointssl-s3 AWS_ACCESS_KEY_ID="${JOBS_AWS_ACCESS_KEY_ID:?}" \
      AWS_SECRET_ACCESS_KEY="${JOBS_AWS_SECRET_ACCESS_KEY:?}"
    create_secret mlflow-s3 AWS_ACCESS_KEY_ID="${MLFLOW_AWS_ACCESS_KEY_ID:?}" \
      AWS_SECRET_ACCESS_KEY="${MLFLOW_AWS_SECRET_ACCESS_KEY:?}"
    mlflow_secrets
    ;;
  mlflow-user)
    create_mlflow_user
    ;;
  *)
    echo "usage: $0 dev|prod|mlflow-user" >&2
    exit 2
    ;;
esac
