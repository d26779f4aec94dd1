#!/usr/bin/env bash
# Read-only checks before 'kubectl apply -k k8s/overlays/<overlay>': is everything the overlay expects
# from the cluster in place? Prints one line per check and exits 1 if any failed.
#   infra/k8s/preflight.sh dev|gpu-prod|gpu-prod-raycronjob
set -uo pipefail

overlay="${1:-}"
case "$overlay" in
  dev | gpu-prod | gpu-prod-raycronjob) ;;
  *) echo "usage: $0 dev|gpu-prod|gpu-prod-raycronjob" >&2; exit 2 ;;
esac
NS="${NAMESPACE:-jointssl}"
failed=0

check() {  # DESCRIPTION COMMAND...: run a command quietly, report whether it succeeded
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then
    echo "ok    $what"
  else
    echo "FAIL  $what"
    failed=1
  fi
}

has_keys() {  # SECRET KEY...: the Secret exists and holds every key (values are not read)
  local name=$1 keys
  shift
  keys=" $(kubectl --namespace "$NS" get secret "$name" \
    -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}' 2>/dev/null) "
  for key in "$@"; do
    [[ "$keys" == *" $key "* ]] || return 1
  done
}

require_secret() {  # SECRET KEY...
  check "Secret $NS/$1 with keys ${*:2}" has_keys "$@"
}

gpu_nodes() {  # at least one node of the GPU pool offers nvidia.com/gpu
  kubectl get nodes -l jointssl.io/node-pool=gpu \
    -o jsonpath='{range .items[*]}{.status.allocatable.nvidia\.com/gpu}{"\n"}{end}' | grep -qE '^[1-9]'
}

operator_version() {  # the KubeRay operator runs the pinned release
  kubectl --namespace kuberay-system get deployment kuberay-operator \
    -o jsonpath='{.spec.template.spec.containers[0].image}' | grep -q ':v1.7.0$' &&
    kubectl --namespace kuberay-system rollout status deployment/kuberay-operator --timeout=10s
}

check "namespace $NS" kubectl get namespace "$NS"
check "KubeRay operator v1.7.0 ready (infra/k8s/kuberay/install.sh)" operator_version
for crd in rayclusters.ray.io rayjobs.ray.io; do
  check "CRD $crd" kubectl get crd "$crd"
done
if [ "$overlay" = gpu-prod-raycronjob ]; then
  check "CRD raycronjobs.ray.io" kubectl get crd raycronjobs.ray.io
fi

require_secret jointssl-s3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
require_secret mlflow-client MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD
require_secret mlflow-s3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
require_secret mlflow-db password backend-store-uri
require_secret mlflow-auth basic_auth.ini admin-password flask-secret-key

if [ -z "${MLFLOW_DB_HOST:-}" ]; then
  check "MLflow database ready (infra/k8s/mlflow-db)" \
    kubectl --namespace "$NS" rollout status statefulset/mlflow-db --timeout=10s
fi

if [ "$overlay" = dev ]; then
  require_secret object-store-admin AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  check "object store ready (infra/k8s/object-store)" \
    kubectl --namespace "$NS" rollout status deployment/seaweedfs --timeout=10s
else
  check "GPU node pool: nodes labelled jointssl.io/node-pool=gpu with allocatable nvidia.com/gpu" gpu_nodes
  check "IngressClass nginx" kubectl get ingressclass nginx
  require_secret mlflow-tls tls.crt tls.key
fi

exit "$failed"
