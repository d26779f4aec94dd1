#!/usr/bin/env bash
# Install (or upgrade) the KubeRay operator, pinned: chart kuberay-operator 1.7.0 from the project's Helm
# repository, into the namespace kuberay-system, watching only the jointssl namespace.
#   infra/k8s/kuberay/install.sh                 # the CronJob flavour (k8s/overlays/dev, gpu-prod)
#   infra/k8s/kuberay/install.sh --raycronjob    # also the alpha RayCronJob (k8s/overlays/gpu-prod-raycronjob)
# Helm installs the chart's CRDs on first install only; on an upgrade apply the new CRDs first:
#   kubectl apply --server-side -k "github.com/ray-project/kuberay/ray-operator/config/crd?ref=v1.7.0"
set -euo pipefail
cd "$(dirname "$0")"

CHART_VERSION=1.7.0
values=(--values values.yaml)
if [ "${1:-}" = "--raycronjob" ]; then
  values+=(--values values-raycronjob.yaml)
fi

helm repo add kuberay https://ray-project.github.io/kuberay-helm/ --force-update >/dev/null
helm upgrade --install kuberay-operator kuberay/kuberay-operator \
  --version "$CHART_VERSION" --namespace kuberay-system --create-namespace \
  "${values[@]}" --wait --timeout 5m
kubectl --namespace kuberay-system rollout status deployment/kuberay-operator --timeout=120s
