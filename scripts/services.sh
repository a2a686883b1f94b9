# Helpers for scripts/test: throwaway servers on 127.0.0.1, ports of their own.
# Sourced, not run.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a PostgreSQL cluster owned by the postgres user in a fresh directory
# and exports ATTACHE_TEST_POSTGRES_URL. initdb refuses to run as root.
start_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PG_DIR=$(mktemp -d /tmp/attache-pg.XXXXXX)
  chown postgres "$PG_DIR"
  local port
  port=$(free_port)
  runuser -u postgres -- "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log" 2>&1
  runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w start \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
  runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres attache
  export ATTACHE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/attache"
  PG_BIN=$bin
}

stop_postgres() {
  if [ -n "${PG_DIR:-}" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}

# Starts a Redis server with a password of its own on a port of its own
# (nothing saved to disk) and exports ATTACHE_TEST_REDIS_URL.
start_redis() {
  REDIS_DIR=$(mktemp -d /tmp/attache-redis.XXXXXX)
  local port password
  port=$(free_port)
  password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  redis-server --bind 127.0.0.1 --port "$port" --requirepass "$password" \
    --save '' --appendonly no --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
  local i
  for i in $(seq 1 100); do
    if REDISCLI_AUTH="$password" redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
      export ATTACHE_TEST_REDIS_URL="redis://:$password@127.0.0.1:$port/0"
      return 0
    fi
    sleep 0.1
  done
  echo "redis-server did not start; its log:" >&2
  cat "$REDIS_DIR/redis.log" >&2
  return 1
}

stop_redis() {
  if [ -n "${REDIS_DIR:-}" ]; then
    if [ -f "$REDIS_DIR/redis.pid" ]; then
      kill -9 "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true
    fi
    rm -rf "$REDIS_DIR"
  fi
}

# Prints the 10 ports of start_s3: 8 free ones, then a free P and P+10000,
# free too. One python3 holds them all until the last is found, so none
# repeats (python3 starts slowly under pyenv: one call, not ten).
free_s3_ports() {
  python3 -c '
import socket
held, ports = [], []
def take(port=0):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except (OSError, OverflowError):
        s.close()
        return None
    held.append(s)
    return s.getsockname()[1]
while len(ports) < 8:
    ports.append(take())
while True:
    p = take()
    if take(p + 10000):
        ports += [p, p + 10000]
        break
print(*ports)
for s in held:
    s.close()'
}

# Starts SeaweedFS's `weed mini` (master, volume server, filer and S3 gateway
# in one process) in a fresh directory as the S3-compatible server of the
# object-store tests, and exports ATTACHE_TEST_S3_ENDPOINT, _ACCESS_KEY,
# _SECRET_KEY and _REGION; clients need path-style addressing. The tests make
# their own buckets.
# - Every port is chosen here: mini moves a busy default port silently, and
#   gRPC ports default to HTTP port + 10000, so parallel runs would collide.
#   WebDAV and the Iceberg and Lance catalogs are off; the admin server cannot
#   be, and its maintenance worker dials admin port + 10000 whatever
#   -admin.port.grpc says, so that is the admin gRPC port.
# - Without an identity S3 lets anyone in: the one in -s3.config, with fresh
#   keys, makes it refuse unsigned or wrongly signed requests.
# - As on AWS, a PUT into a missing bucket fails and so does deleting a bucket
#   that is not empty (mini's defaults create the one and empty the other).
# - Each bucket that holds data takes a volume of its own, and mini allows
#   free disk / volume size of them: 64 MB volumes, not its 1 GB, allow
#   hundreds of buckets rather than a few dozen.
# - -logtostderr keeps glog's files out of /tmp; -config_dir keeps any
#   security.toml or master.toml of the machine out.
start_s3() {
  local weed=${ATTACHE_WEED:-$HOME/.cache/attache/venv/bin/weed}
  if [ ! -x "$weed" ]; then
    echo "start_s3: no $weed: run install_deps" >&2
    return 1
  fi
  local master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc admin admin_grpc
  read -r master master_grpc volume volume_grpc filer filer_grpc s3 s3_grpc admin admin_grpc \
    < <(free_s3_ports)
  S3_DIR=$(mktemp -d /tmp/attache-s3.XXXXXX)
  # mini always puts its gRPC unix sockets there; stop_s3 removes them.
  S3_SOCKETS=(/tmp/seaweedfs-{master-grpc-$master_grpc,volume-grpc-$volume_grpc,filer-grpc-$filer_grpc,s3-grpc-$s3_grpc,admin-grpc-$admin_grpc}.sock)
  local access_key secret_key
  access_key=attache-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  secret_key=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
  cat >"$S3_DIR/s3.json" <<JSON
{"identities": [{"name": "attache-tests",
  "credentials": [{"accessKey": "$access_key", "secretKey": "$secret_key"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
  # AWS_* in the environment would add a second identity: mini's 'mini' user.
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$weed" -logtostderr -config_dir="$S3_DIR" \
    mini -dir="$S3_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$master" -master.port.grpc="$master_grpc" \
    -volume.port="$volume" -volume.port.grpc="$volume_grpc" \
    -filer.port="$filer" -filer.port.grpc="$filer_grpc" -filer.localSocket="$S3_DIR/filer.sock" \
    -s3.port="$s3" -s3.port.grpc="$s3_grpc" -s3.localSocket="$S3_DIR/s3.sock" \
    -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -master.volumeSizeLimitMB=64 \
    -admin.ui=false -admin.port="$admin" -admin.port.grpc="$admin_grpc" \
    -s3.config="$S3_DIR/s3.json" -s3.autoCreateBucket=false -s3.allowDeleteBucketNotEmpty=false \
    >"$S3_DIR/weed.log" 2>&1 &
  S3_PID=$!
  # Up once an unsigned request is refused: 200 would mean no credentials.
  # The probe is bash's /dev/tcp, in a subshell so fd 3 stays its own.
  local status started=$SECONDS
  while :; do
    status=$(
      exec 2>/dev/null
      exec 3<>"/dev/tcp/127.0.0.1/$s3" || exit 0
      printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$s3" >&3
      read -r -t 2 _ status _ <&3 && echo "$status"
    ) || true
    [ "$status" = 403 ] && break
    if [ "$status" = 200 ] || ! kill -0 "$S3_PID" 2>/dev/null || [ $((SECONDS - started)) -ge 30 ]; then
      if [ "$status" = 200 ]; then
        echo "start_s3: S3 on 127.0.0.1:$s3 answered an unsigned GET / with 200: credentials not in force" >&2
      else
        echo "start_s3: weed mini not serving S3 on 127.0.0.1:$s3 after $((SECONDS - started)) s (unsigned GET /: ${status:-no answer})" >&2
      fi
      echo "end of $S3_DIR/weed.log:" >&2
      tail -n 30 "$S3_DIR/weed.log" >&2
      stop_s3
      return 1
    fi
    sleep 0.1
  done
  export ATTACHE_TEST_S3_ENDPOINT="http://127.0.0.1:$s3"
  export ATTACHE_TEST_S3_ACCESS_KEY="$access_key"
  export ATTACHE_TEST_S3_SECRET_KEY="$secret_key"
  export ATTACHE_TEST_S3_REGION=us-east-1
}

# Kills weed mini outright, as stop_postgres does: its data is thrown away
# and a graceful stop takes seconds. Then removes its directory and sockets.
stop_s3() {
  if [ -n "${S3_PID:-}" ]; then
    kill -KILL "$S3_PID" 2>/dev/null || true
    wait "$S3_PID" 2>/dev/null || true
    S3_PID=
  fi
  if [ -n "${S3_DIR:-}" ]; then
    rm -f "${S3_SOCKETS[@]}"
    rm -rf "$S3_DIR"
    S3_DIR=
  fi
}

# Prints a free port P whose neighbour P+1 is free too (OpenBao's dev server
# puts its cluster listener there).
free_port_pair() {
  python3 -c '
import socket
held = []
def take(port=0):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except (OSError, OverflowError):
        s.close()
        return None
    held.append(s)
    return s.getsockname()[1]
while True:
    p = take()
    if take(p + 1):
        print(p)
        break
for s in held:
    s.close()'
}

# Starts an OpenBao dev server (in memory, unsealed, TLS with a CA of its
# own) as the Vault of the key-provider tests, with a random root token, the
# Transit engine enabled and a key named `attache`; exports
# ATTACHE_TEST_BAO_ADDR (https), ATTACHE_TEST_BAO_TOKEN and
# ATTACHE_TEST_BAO_CA_FILE. The tests make Transit keys of their own.
start_bao() {
  local bao=${ATTACHE_BAO:-$HOME/.cache/attache/bao-venv/bin/bao}
  if [ ! -x "$bao" ]; then
    echo "start_bao: no $bao: run install_key_servers" >&2
    return 1
  fi
  local port token
  port=$(free_port_pair)
  token=attache-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  BAO_DIR=$(mktemp -d /tmp/attache-bao.XXXXXX)
  mkdir "$BAO_DIR/tls"
  # HOME for the CLI's token helper; no BAO_*/VAULT_* of the machine.
  env -u BAO_ADDR -u VAULT_ADDR -u BAO_TOKEN -u VAULT_TOKEN HOME="$BAO_DIR" \
    "$bao" server -dev -dev-tls -dev-tls-cert-dir="$BAO_DIR/tls" -dev-no-store-token \
    -dev-root-token-id="$token" -dev-listen-address="127.0.0.1:$port" \
    >"$BAO_DIR/bao.log" 2>&1 &
  BAO_PID=$!
  local cli=(env HOME="$BAO_DIR" BAO_ADDR="https://127.0.0.1:$port" BAO_TOKEN="$token"
    BAO_CACERT="$BAO_DIR/tls/vault-ca.pem" "$bao")
  local started=$SECONDS
  until [ -f "$BAO_DIR/tls/vault-ca.pem" ] && "${cli[@]}" status >/dev/null 2>&1; do
    if ! kill -0 "$BAO_PID" 2>/dev/null || [ $((SECONDS - started)) -ge 30 ]; then
      echo "start_bao: OpenBao not serving on 127.0.0.1:$port after $((SECONDS - started)) s; end of $BAO_DIR/bao.log:" >&2
      tail -n 30 "$BAO_DIR/bao.log" >&2
      stop_bao
      return 1
    fi
    sleep 0.2
  done
  "${cli[@]}" secrets enable transit >/dev/null
  "${cli[@]}" write -f transit/keys/attache >/dev/null
  export ATTACHE_TEST_BAO_ADDR="https://127.0.0.1:$port"
  export ATTACHE_TEST_BAO_TOKEN="$token"
  export ATTACHE_TEST_BAO_CA_FILE="$BAO_DIR/tls/vault-ca.pem"
}

stop_bao() {
  if [ -n "${BAO_PID:-}" ]; then
    kill -KILL "$BAO_PID" 2>/dev/null || true
    wait "$BAO_PID" 2>/dev/null || true
    BAO_PID=
  fi
  if [ -n "${BAO_DIR:-}" ]; then
    rm -rf "$BAO_DIR"
    BAO_DIR=
  fi
}

# Starts moto's server (its KMS emulator) on a port of its own and exports
# ATTACHE_TEST_KMS_ENDPOINT; the tests make their KMS keys and accept any
# credentials. In memory: nothing to clean up but the process.
start_kms() {
  local moto=${ATTACHE_MOTO_SERVER:-$HOME/.cache/attache/kms-venv/bin/moto_server}
  if [ ! -x "$moto" ]; then
    echo "start_kms: no $moto: run install_key_servers" >&2
    return 1
  fi
  local port
  port=$(free_port)
  KMS_LOG=$(mktemp /tmp/attache-kms.XXXXXX)
  "$moto" -H 127.0.0.1 -p "$port" >"$KMS_LOG" 2>&1 &
  KMS_PID=$!
  local status started=$SECONDS
  while :; do
    status=$(
      exec 2>/dev/null
      exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 0
      printf 'GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$port" >&3
      read -r -t 2 _ status _ <&3 && echo "$status"
    ) || true
    [ "$status" = 200 ] && break
    if ! kill -0 "$KMS_PID" 2>/dev/null || [ $((SECONDS - started)) -ge 30 ]; then
      echo "start_kms: moto_server not serving on 127.0.0.1:$port after $((SECONDS - started)) s; end of $KMS_LOG:" >&2
      tail -n 30 "$KMS_LOG" >&2
      stop_kms
      return 1
    fi
    sleep 0.2
  done
  export ATTACHE_TEST_KMS_ENDPOINT="http://127.0.0.1:$port"
}

stop_kms() {
  if [ -n "${KMS_PID:-}" ]; then
    kill -KILL "$KMS_PID" 2>/dev/null || true
    wait "$KMS_PID" 2>/dev/null || true
    KMS_PID=
  fi
  if [ -n "${KMS_LOG:-}" ]; then
    rm -f "$KMS_LOG"
    KMS_LOG=
  fi
}
