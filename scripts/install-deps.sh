# Installs, from Debian's packages, what cargo cannot: Chromium for the bots,
# PostgreSQL for the production-database tests, cmake (libopus is built from
# source by the opus crate), opus-tools to check recordings, and the C
# toolchain pieces.
# Sourced, not run. Installs only what is missing.

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
  if [ ${#want[@]} -gt 0 ]; then
    echo "installing: ${want[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
  fi
}
