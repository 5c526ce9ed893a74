#!/usr/bin/env bash
# Build the pinned tools for integration tests into .tools/bin/.
#
#   scripts/tools.sh                      # every tool that is missing or out of date
#   scripts/tools.sh pulumi|provider|cluster|kubescore|patroni [...]   # only those
#
# Tools (each a separate Go module under tools/, pinned by its go.mod/go.sum):
#   pulumi    -> .tools/bin/pulumi                      (tools/pulumi)
#   provider  -> .tools/bin/pulumi-resource-kubernetes  (tools/provider)
#   cluster   -> .tools/bin/{etcd,kube-apiserver,kube-controller-manager,
#                            kube-scheduler,kubectl,kwok} (tools/cluster)
#   kubescore -> .tools/bin/kube-score                  (tools/kubescore)
#   s3        -> .tools/bin/weed (SeaweedFS: the real S3 server of the off-site tests) (tools/s3)
#   monitoring -> .tools/bin/{promtool,postgres_exporter} (tools/monitoring): the alert rules'
#                unit tests, and the exporter version the stack pins, scraped by the tests
#   migrate   -> .tools/bin/migrate (golang-migrate's CLI with the postgres driver and file source,
#                the version databaseMigrateImage pins): the engine tests apply the schema with it
#   crdgen    -> .tools/bin/controller-gen (tools/crdgen): the Prometheus Operator's CRDs,
#                generated from its API types, for the integration test
#   patroni   -> .tools/bin/{patroni,patronictl}: Debian trixie's Patroni (pure Python, arch
#                all) unpacked, not installed, and run on this machine's /usr/bin/python3 with
#                the python3 packages scripts/deps.sh installs; the failover engine tests
#                (tests/failover) run it. Not a Go module: its hash is the pinned package
#                versions and the python3 version.
#
# Built binaries are kept in a cache outside the repository, keyed on a hash of
# the tool module's go.mod + go.sum (+ main.go) and the Go version, so a fresh
# clone on the same machine only links them:
#   ${ECOMMERCE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecommerce-platform/tools}/<tool>-<hash>/
#
# Builds run one at a time (a lock in the cache folder also keeps two runs of
# this script apart) and under `nice`, because a cold build takes 7-23 minutes
# per tool on a 2-core machine; with a warm Go build cache all three relink in
# about 2 minutes, and from the tools cache they are only linked (well under 1 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.tools/bin"
CACHE="${ECOMMERCE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecommerce-platform/tools}"

PULUMI_VERSION="v3.274.1"
# The provider module is only served as a pseudo-version
# (v4.0.0-20260115033456-f47bc2d6f199), which is exactly the v4.25.0 release:
# stamp what is built. The program pins the SDK to the same version (go.mod).
PROVIDER_VERSION="4.25.0"
KUBESCORE_VERSION="v1.20.0"
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"
PROMETHEUS_VERSION="v0.316.0"      # promtool of Prometheus 3.16
POSTGRES_EXPORTER_VERSION="v0.17.1" # as databaseExporterImage pins
CONTROLLER_TOOLS_VERSION="v0.23.0"
MIGRATE_VERSION="v4.20.1"           # as databaseMigrateImage pins
# Patroni 4.x, the major the deployed image ships (bookworm has only 3.0.2, without quorum
# commit or permanent slots kept on replicas); ydiff is patronictl's diff library (trixie only).
PATRONI_DEB="patroni=4.0.7-3~deb13u1"
YDIFF_DEB="python3-ydiff=1.4.2-1"
PATRONI_SUITE="trixie"
K8S_VERSION="v1.37.2"
# Bump to force a rebuild of every tool when the recipe below changes.
RECIPE=1

START=$SECONDS
log() { echo "[tools] $* ($((SECONDS - START))s)"; }

# Binaries each tool puts into .tools/bin.
binaries() {
  case "$1" in
    pulumi) echo "pulumi" ;;
    provider) echo "pulumi-resource-kubernetes" ;;
    cluster) echo "etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok" ;;
    kubescore) echo "kube-score" ;;
    s3) echo "weed" ;;
    monitoring) echo "promtool postgres_exporter" ;;
    crdgen) echo "controller-gen" ;;
    migrate) echo "migrate" ;;
    patroni) echo "patroni patronictl" ;;
    *) echo "unknown tool: $1 (want pulumi, provider, cluster, kubescore, s3, monitoring, crdgen, migrate or patroni)" >&2; return 1 ;;
  esac
}

label() {
  case "$1" in
    pulumi) echo "pulumi CLI (cold 7-13 min)" ;;
    provider) echo "kubernetes provider (cold 17-20 min)" ;;
    cluster) echo "cluster tools: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok (cold 13-23 min)" ;;
    kubescore) echo "kube-score (cold 1-2 min)" ;;
    s3) echo "SeaweedFS S3 server (cold about 10 min)" ;;
    monitoring) echo "promtool and postgres_exporter (cold 20 min)" ;;
    crdgen) echo "controller-gen (cold about 1 min)" ;;
    migrate) echo "golang-migrate CLI (cold about 1 min)" ;;
    patroni) echo "Patroni from Debian $PATRONI_SUITE (a download, seconds)" ;;
  esac
}

# Hash of everything that decides a tool's binaries.
tool_hash() {
  local dir="$ROOT/tools/$1"
  if [[ "$1" == patroni ]]; then
    { echo "recipe=$RECIPE $PATRONI_DEB $YDIFF_DEB suite=$PATRONI_SUITE"; /usr/bin/python3 --version; } |
      sha256sum | cut -c1-16
    return
  fi
  {
    case "$1" in
      pulumi) echo "recipe=$RECIPE version=$PULUMI_VERSION" ;;
      provider) echo "recipe=$RECIPE version=$PROVIDER_VERSION" ;;
      cluster) echo "recipe=$RECIPE version=$K8S_VERSION" ;;
      kubescore) echo "recipe=$RECIPE version=$KUBESCORE_VERSION" ;;
      s3) echo "recipe=$RECIPE version=$SEAWEEDFS_VERSION" ;;
      monitoring) echo "recipe=$RECIPE prometheus=$PROMETHEUS_VERSION postgres_exporter=$POSTGRES_EXPORTER_VERSION" ;;
      crdgen) echo "recipe=$RECIPE version=$CONTROLLER_TOOLS_VERSION" ;;
      migrate) echo "recipe=$RECIPE version=$MIGRATE_VERSION tags=postgres,file" ;;
    esac
    go env GOVERSION GOOS GOARCH
    cat "$dir/go.mod" "$dir/go.sum"
    if [[ -f "$dir/main.go" ]]; then cat "$dir/main.go"; fi
  } | sha256sum | cut -c1-16
}

# go build, niced, in the tool's module folder; $1 = output folder.
gobuild() {
  local out="$1"; shift
  nice -n 10 go build -buildvcs=false -o "$out/" "$@"
}

build_pulumi() {
  local out="$1"
  (cd "$ROOT/tools/pulumi" &&
    gobuild "$out" \
      -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
      github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
}

build_provider() {
  local out="$1" mod
  (
    cd "$ROOT/tools/provider"
    go mod download github.com/pulumi/pulumi-kubernetes/provider/v4
    mod="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)"
    # The module ships these; main.go embeds them (the copies are git-ignored).
    for f in schema.json terraform-mapping.json; do
      install -m 0644 "$mod/cmd/pulumi-resource-kubernetes/$f" "$f"
    done
    gobuild "$out" \
      -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PROVIDER_VERSION" \
      .
    # go build names the binary after the module path's last element.
    mv "$out/provider" "$out/pulumi-resource-kubernetes"
  )
}

build_cluster() {
  local out="$1" v="k8s.io/component-base/version"
  local major="${K8S_VERSION#v}"; major="${major%%.*}"
  local minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  (cd "$ROOT/tools/cluster" &&
    gobuild "$out" \
      -ldflags "-X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
      tool)
  # etcd's main package is go.etcd.io/etcd/server/v3, so it comes out as "server".
  mv "$out/server" "$out/etcd"
}

build_kubescore() {
  local out="$1" v="main"
  (cd "$ROOT/tools/kubescore" &&
    gobuild "$out" -ldflags "-X $v.version=$KUBESCORE_VERSION" tool)
}

build_s3() {
  local out="$1"
  (cd "$ROOT/tools/s3" && gobuild "$out" tool)
}

build_monitoring() {
  local out="$1" v="github.com/prometheus/common/version"
  (cd "$ROOT/tools/monitoring" &&
    gobuild "$out" -ldflags "-X $v.Version=${PROMETHEUS_VERSION#v}" github.com/prometheus/prometheus/cmd/promtool &&
    gobuild "$out" -ldflags "-X $v.Version=${POSTGRES_EXPORTER_VERSION#v}" \
      github.com/prometheus-community/postgres_exporter/cmd/postgres_exporter)
}

build_crdgen() {
  local out="$1"
  (cd "$ROOT/tools/crdgen" && gobuild "$out" tool)
}

# The CLI's database drivers and sources are chosen by build tags, as the image's build does.
build_migrate() {
  local out="$1"
  (cd "$ROOT/tools/migrate" &&
    gobuild "$out" -tags 'postgres file' -ldflags "-X main.Version=$MIGRATE_VERSION" \
      github.com/golang-migrate/migrate/v4/cmd/migrate)
}

# Patroni: the pinned .debs from Debian's $PATRONI_SUITE through a private apt list (this
# machine's /etc/apt is left alone), unpacked with dpkg -x (no maintainer scripts, nothing
# installed), and two wrappers that run its entry points on /usr/bin/python3 with the unpacked
# dist-packages first on PYTHONPATH. The unpacked tree is linked to .tools/patroni beside
# .tools/bin, where the wrappers look for it: the tests run Patroni as the OS user postgres,
# who cannot read a cache under root's home.
build_patroni() {
  local out="$1" apt="$1/.apt" b
  [[ -x /usr/bin/python3 ]] || { echo "[tools] /usr/bin/python3 is missing: run make deps" >&2; return 1; }
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $PATRONI_SUITE main" \
    >"$apt/sources.list"
  local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=/nonexistent
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=$(id -un)")
  apt-get "${opts[@]}" update -qq
  (cd "$apt/debs" && apt-get "${opts[@]}" download -qq "$PATRONI_DEB" "$YDIFF_DEB")
  for b in "$apt"/debs/*.deb; do dpkg -x "$b" "$out/root"; done
  rm -rf "$apt"
  for b in patroni patronictl; do
    printf '%s\n' '#!/bin/sh' \
      "# $b of Debian's ${PATRONI_DEB#*=} ($PATRONI_SUITE), unpacked by scripts/tools.sh into ../patroni." \
      'root=$(cd "$(dirname "$0")/../patroni" && pwd) || exit 1' \
      "PYTHONPATH=\"\$root/usr/lib/python3/dist-packages\${PYTHONPATH:+:\$PYTHONPATH}\" exec /usr/bin/python3 \"\$root/usr/bin/$b\" \"\$@\"" \
      >"$out/$b"
    chmod 0755 "$out/$b"
  done
  PYTHONPATH="$out/root/usr/lib/python3/dist-packages" /usr/bin/python3 "$out/root/usr/bin/patroni" --version
}

# Make sure the cache holds a complete build for $1 and link it into .tools/bin.
ensure() {
  local tool="$1" bins hash entry stamp b ok=1
  bins="$(binaries "$tool")"
  hash="$(tool_hash "$tool")"
  entry="$CACHE/$tool-$hash"
  stamp="$BIN/.$tool.hash"

  if [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
    for b in $bins; do [[ -x "$BIN/$b" ]] || ok=0; done
    if [[ -d "$entry/root" && ! -d "${BIN%/bin}/$tool" ]]; then ok=0; fi
    if ((ok)); then
      log "$tool is up to date"
      return 0
    fi
  fi

  if [[ ! -f "$entry/.complete" ]]; then
    local tmp="$CACHE/.tmp-$tool-$hash-$$" t0=$SECONDS
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "building $(label "$tool")..."
    if ! "build_$tool" "$tmp"; then
      rm -rf "$tmp"
      log "building $tool FAILED"
      return 1
    fi
    rm -rf "$entry"
    mv "$tmp" "$entry"
    touch "$entry/.complete"
    log "built $tool in $((SECONDS - t0))s -> $entry"
  else
    log "$tool found in cache $entry"
  fi

  mkdir -p "$BIN"
  for b in $bins; do
    rm -f "$BIN/$b"
    # A hard link costs no space; copy when the cache is on another filesystem.
    ln "$entry/$b" "$BIN/$b" 2>/dev/null || cp "$entry/$b" "$BIN/$b"
  done
  if [[ -d "$entry/root" ]]; then # an unpacked package tree (patroni), beside bin/
    rm -rf "${BIN%/bin}/$tool"
    cp -al "$entry/root" "${BIN%/bin}/$tool" 2>/dev/null || cp -a "$entry/root" "${BIN%/bin}/$tool"
  fi
  echo "$hash" >"$stamp"
  log "$tool ready in $BIN: $bins"
}

main() {
  local tools=("$@") tool
  if ((${#tools[@]} == 0)); then tools=(pulumi provider cluster kubescore s3 monitoring crdgen migrate patroni); fi
  for tool in "${tools[@]}"; do binaries "$tool" >/dev/null; done

  command -v go >/dev/null || { echo "[tools] go is not on PATH" >&2; exit 1; }
  mkdir -p "$CACHE" "$BIN"

  # One build at a time on this machine, whichever clone asks.
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then
    log "another tools build holds $CACHE/.lock; waiting for it..."
    flock 9
  fi

  for tool in "${tools[@]}"; do ensure "$tool"; done
  log "done; add $BIN to PATH (export PATH=\"$BIN:\$PATH\")"
}

main "$@"
