#!/usr/bin/env bash
# Start a local Kubernetes control plane for integration tests.
#
#   scripts/cluster-up.sh          (or: make cluster-up)
#   export KUBECONFIG=$PWD/.cluster/kubeconfig
#   scripts/cluster-down.sh        (or: make cluster-down)
#
# Everything listens on 127.0.0.1 only, on free ports picked at start:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok,
# which plays the kubelet for fake Nodes (pods become Running and Ready with
# IPs, Services get endpoints, LoadBalancer Services get an ingress IP).
# Binaries come from .tools/bin (scripts/tools.sh cluster).
#
# State lives in $CLUSTER_DIR (default .cluster/): pki/, kubeconfig, etcd/,
# logs/, pids/. Running it again while the cluster is healthy does nothing.
#
# Environment:
#   CLUSTER_DIR     state folder                (default <repo>/.cluster)
#   CLUSTER_NODES   number of fake nodes        (default 3: kwok-node-0..N-1)
#   CLUSTER_LB_IP   ingress IP given to every LoadBalancer Service (default
#                   127.0.0.1: nothing real serves it, and anything that tries
#                   to connect to it stays on this machine)
#   TOOLS_BIN       where the binaries are      (default <repo>/.tools/bin)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${CLUSTER_DIR:-$ROOT/.cluster}"
BIN="${TOOLS_BIN:-$ROOT/.tools/bin}"
NODES="${CLUSTER_NODES:-3}"
LB_IP="${CLUSTER_LB_IP:-127.0.0.1}"
SERVICE_CIDR="10.96.0.0/16"
POD_CIDR="10.244.0.0/16"
K8S_VERSION="v1.37.2"

START=$SECONDS
log() { echo "[cluster] $* ($((SECONDS - START))s)"; }
die() { echo "[cluster] ERROR: $*" >&2; exit 1; }

PKI="$STATE/pki"
KUBECONFIG_FILE="$STATE/kubeconfig"
kctl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# --- helpers ------------------------------------------------------------------

# True if the process in pids/$1.pid is alive and is one we started (its
# command line names this state folder), so a recycled PID is never mistaken.
alive() {
  local f="$STATE/pids/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE/"
}

apiserver_ready() {
  [[ -f "$STATE/ports.env" ]] || return 1
  # shellcheck source=/dev/null
  source "$STATE/ports.env"
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

# wait_for <seconds> <what> <command...>: retry until the command succeeds;
# give up at the timeout or as soon as a process we started has exited.
wait_for() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout)) f
  until "$@"; do
    for f in "$STATE"/pids/*.pid; do
      [[ -f "$f" ]] || continue
      if ! alive "$(basename "$f" .pid)"; then
        echo "[cluster] $(basename "$f" .pid) exited while waiting for $what" >&2
        return 1
      fi
    done
    if ((SECONDS >= deadline)); then
      echo "[cluster] timed out after ${timeout}s waiting for $what" >&2
      return 1
    fi
    sleep 0.5
  done
}

# A TCP port nobody listens on, below the ephemeral range, not picked before.
PICKED=" "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    [[ "$PICKED" == *" $p "* ]] && continue
    [[ -z "$(ss -Htln "sport = :$p")" ]] || continue
    PICKED+="$p "
    echo "$p"
    return 0
  done
}

# start <name> <binary> <args...>: run in the background in its own session,
# log to logs/<name>.log and record the PID in pids/<name>.pid.
start() {
  local name="$1" bin="$2"; shift 2
  setsid "$BIN/$bin" "$@" </dev/null >"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$STATE/pids/$name.pid"
}

on_exit() {
  local rc=$?
  ((rc != 0)) || return 0
  echo "[cluster] start failed; last lines of each log under $STATE/logs:" >&2
  local f
  for f in "$STATE"/logs/*.log; do
    [[ -f "$f" ]] || continue
    echo "--- $f" >&2
    tail -n 15 "$f" >&2
  done
  KEEP_STATE=1 "$ROOT/scripts/cluster-down.sh" >&2 || true
  echo "[cluster] processes stopped; state kept in $STATE for inspection" >&2
}

# --- certificates -----------------------------------------------------------

# sign <name> <subject> <extensions>: key + certificate signed by our CA.
sign() {
  local name="$1" subj="$2" ext="$3"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" \
    -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
    -extfile <(printf '%s\n' "$ext") -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr"
}

make_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=ecommerce-local-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  sign apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
    'basicConstraints=critical,CA:FALSE' \
    'keyUsage=critical,digitalSignature,keyEncipherment' \
    'extendedKeyUsage=serverAuth' \
    'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local')"
  # Cluster admin; also used by controller-manager, scheduler and kwok.
  sign admin "/O=system:masters/CN=kubernetes-admin" "$(printf '%s\n' \
    'basicConstraints=critical,CA:FALSE' \
    'keyUsage=critical,digitalSignature,keyEncipherment' \
    'extendedKeyUsage=clientAuth')"
  # Service-account token signing key pair.
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

write_kubeconfig() {
  cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ecommerce-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: kubernetes-admin
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/admin.crt")
    client-key-data: $(base64 -w0 <"$PKI/admin.key")
contexts:
- name: ecommerce-local
  context:
    cluster: ecommerce-local
    user: kubernetes-admin
    namespace: default
current-context: ecommerce-local
EOF
  chmod 600 "$KUBECONFIG_FILE"
}

# --- kwok configuration --------------------------------------------------------

write_kwok_config() {
  local kwok_dir stage
  kwok_dir="$(cd "$ROOT/tools/cluster" && go mod download sigs.k8s.io/kwok &&
    go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)" ||
    die "cannot find the sigs.k8s.io/kwok module (needs go and the module cache)"
  {
    cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
  cidr: $POD_CIDR
  nodeIP: 127.0.0.1
  nodeLeaseDurationSeconds: 40
  nodeLeaseParallelism: 4
  nodePlayStageParallelism: 4
  podPlayStageParallelism: 4
  podsOnNodeSyncParallelism: 1
EOF
    # The stock "fast" stages kwok ships (kustomize/stage/fast/kustomization.yaml).
    for stage in node/fast/node-initialize.yaml \
      node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      echo "# from sigs.k8s.io/kwok kustomize/stage/$stage"
      cat "$kwok_dir/kustomize/stage/$stage"
    done
    # kwok's chaos stage (kustomize/stage/pod/chaos), aimed at the promotion check: the check
    # pod of a color that does not serve the version its config says (the integration tests
    # set 9.9.9-broken) fails, as promotion-check.sh would on a real cluster.
    echo "---"
    echo "# from sigs.k8s.io/kwok kustomize/stage/pod/chaos/pod-container-running-failed.yaml, retargeted"
    sed -e 's|\.metadata\.labels\["pod-container-running-failed\.stage\.kwok\.x-k8s\.io"\]|.metadata.annotations["ecommerce-platform/expected-version"]|' \
      -e "0,/- 'true'/s//- '9.9.9-broken'/" \
      -e 's|name: pod-container-running-failed$|name: promotion-check-fails-on-broken-version|' \
      "$kwok_dir/kustomize/stage/pod/chaos/pod-container-running-failed.yaml"
    # No cloud here: give LoadBalancer Services an ingress IP (Pulumi waits for one).
    cat <<EOF
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: service-load-balancer-ingress
spec:
  resourceRef:
    apiGroup: v1
    kind: Service
  selector:
    matchExpressions:
    - key: '.spec.type'
      operator: 'In'
      values:
      - 'LoadBalancer'
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.loadBalancer.ingress'
      operator: 'DoesNotExist'
  next:
    statusTemplate: |
      loadBalancer:
        ingress:
        - ip: "$LB_IP"
          ipMode: VIP
EOF
  } >"$STATE/kwok.yaml"
}

write_manifests() {
  local i
  {
    for ((i = 0; i < NODES; i++)); do
      cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 64Gi, pods: "110", ephemeral-storage: 100Gi}
  capacity: {cpu: "32", memory: 64Gi, pods: "110", ephemeral-storage: 100Gi}
---
EOF
    done
    # Both classes bind at once (host-path volumes under /tmp/hostpath_pv).
    cat <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast-ssd
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: true
EOF
  } >"$STATE/manifests.yaml"
}

# --- main ---------------------------------------------------------------------

for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing: run 'make tools' (scripts/tools.sh cluster) first"
done
command -v openssl >/dev/null || die "openssl is not on PATH"

if [[ -d "$STATE/pids" ]]; then
  all=1
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    alive "$name" || all=0
  done
  if ((all)) && apiserver_ready; then
    log "already up and healthy; KUBECONFIG=$KUBECONFIG_FILE"
    exit 0
  fi
  log "found a stale or partly running cluster in $STATE; stopping it first"
  "$ROOT/scripts/cluster-down.sh"
fi

[[ -n "$STATE" && "$STATE" != / && "$STATE" != "$HOME" ]] || die "refusing CLUSTER_DIR=$STATE"
rm -rf -- "$STATE"
mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/etcd"
chmod 700 "$STATE/etcd"
trap on_exit EXIT

ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
APISERVER_PORT=$(free_port)
KCM_PORT=$(free_port)
SCHEDULER_PORT=$(free_port)
KWOK_PORT=$(free_port)
cat >"$STATE/ports.env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
KCM_PORT=$KCM_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
KWOK_PORT=$KWOK_PORT
EOF

log "certificates"
make_pki
write_kubeconfig
write_kwok_config
write_manifests

log "etcd on 127.0.0.1:$ETCD_PORT"
start etcd etcd \
  --name=local \
  --data-dir="$STATE/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="local=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync \
  --log-level=warn
wait_for 30 "etcd /health" \
  curl -fs --max-time 2 -o /dev/null "http://127.0.0.1:$ETCD_PORT/health"

log "kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
start kube-apiserver kube-apiserver \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$APISERVER_PORT" \
  --endpoint-reconciler-type=none \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --kubelet-client-certificate="$PKI/admin.crt" \
  --kubelet-client-key="$PKI/admin.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=Node,RBAC \
  --allow-privileged=true \
  --profiling=false
wait_for 90 "kube-apiserver /readyz" apiserver_ready

log "kube-controller-manager, kube-scheduler, kwok"
start kube-controller-manager kube-controller-manager \
  --kubeconfig="$KUBECONFIG_FILE" \
  --authentication-kubeconfig="$KUBECONFIG_FILE" \
  --authorization-kubeconfig="$KUBECONFIG_FILE" \
  --bind-address=127.0.0.1 \
  --secure-port="$KCM_PORT" \
  --controllers='*' \
  --leader-elect=false \
  --enable-hostpath-provisioner \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" \
  --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --cluster-cidr="$POD_CIDR" \
  --allocate-node-cidrs=false \
  --profiling=false
start kube-scheduler kube-scheduler \
  --kubeconfig="$KUBECONFIG_FILE" \
  --authentication-kubeconfig="$KUBECONFIG_FILE" \
  --authorization-kubeconfig="$KUBECONFIG_FILE" \
  --bind-address=127.0.0.1 \
  --secure-port="$SCHEDULER_PORT" \
  --leader-elect=false \
  --profiling=false
start kwok kwok \
  --kubeconfig="$KUBECONFIG_FILE" \
  --config="$STATE/kwok.yaml" \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --server-address="127.0.0.1:$KWOK_PORT"

log "nodes and storage classes"
kctl apply -f "$STATE/manifests.yaml" >/dev/null
wait_for 90 "nodes Ready" \
  kctl wait --for=condition=Ready node --all --timeout=5s >/dev/null 2>&1
# Pods can only be created once the namespace's default ServiceAccount exists.
wait_for 60 "default ServiceAccount" kctl get serviceaccount default -n default >/dev/null 2>&1

for name in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
  alive "$name" || { echo "[cluster] $name exited" >&2; false; }
done
trap - EXIT

version="$(kctl version -o json 2>/dev/null | grep -o '"gitVersion": *"[^"]*"' | tail -1 | cut -d'"' -f4)"
[[ "$version" == "$K8S_VERSION" ]] || log "warning: server says $version, expected $K8S_VERSION"
log "up: Kubernetes $version at https://127.0.0.1:$APISERVER_PORT, $NODES fake node(s)"
echo "export KUBECONFIG=$KUBECONFIG_FILE"
