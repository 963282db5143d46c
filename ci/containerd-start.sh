#!/usr/bin/env bash
# containerd-start.sh PREFIX WORKDIR [--registry] [--registry-auth USER:PASS]
#                     [--no-container] [--log-level LEVEL]
#
# Starts the containerd 1.7 that containerd-setup.sh installed in PREFIX,
# as root, with everything of its own under WORKDIR: the gRPC socket
# WORKDIR/containerd.sock (ttrpc: WORKDIR/containerd.sock.ttrpc), root,
# state, config and logs. CRI is disabled. Then:
#   * imports the busybox image example.test/bb:1 through the Transfer
#     service (`ctr images import --local=false`); the archive is built
#     from PREFIX's busybox and is byte-identical on every run,
#   * runs container c1 (/bin/sleep 86400) with PREFIX's runc, a runc root
#     under WORKDIR and a cgroup named after WORKDIR,
#   * writes WORKDIR/peers.env (KEY=VALUE lines, see the end of this file).
#
# --registry starts Debian's docker-registry 2.8 on 127.0.0.1 only:
#   plain HTTP on port $CTD_REG_PORT (default 5000) and HTTPS on
#   $CTD_REG_TLS_PORT (default 5443). The HTTPS certificate comes from a
#   throw-away CA made in WORKDIR/tls; containerd trusts it because it is
#   started with SSL_CERT_FILE=WORKDIR/tls/bundle.pem (the system bundle plus
#   that CA). containerd 1.7's Transfer service always uses HTTPS.
# --registry-auth USER:PASS also starts an HTTPS registry with htpasswd
#   (bcrypt) basic auth on $CTD_REG_AUTH_PORT (default 5444). Implies
#   --registry.
# --no-container skips c1. --log-level sets containerd's level (default info).
#
# Running it again with the same WORKDIR reuses whatever is still running.
# containerd-stop.sh WORKDIR stops all of it.
set -euo pipefail

usage() {
  sed -n '2,3p' "$0" | sed 's/^# //' >&2
  exit 2
}
[ $# -ge 2 ] || usage
PREFIX=$(cd "$1" && pwd)
mkdir -p "$2"
WORKDIR=$(cd "$2" && pwd)
shift 2
REGISTRY=0
REGISTRY_AUTH=
RUN_C1=1
LOG_LEVEL=info
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) REGISTRY=1 ;;
    --registry-auth)
      REGISTRY=1
      REGISTRY_AUTH=${2:?--registry-auth needs USER:PASS}
      shift
      ;;
    --no-container) RUN_C1=0 ;;
    --log-level)
      LOG_LEVEL=${2:?--log-level needs a level}
      shift
      ;;
    *) usage ;;
  esac
  shift
done
# Not REGISTRY_*: docker-registry reads every REGISTRY_* variable as a
# configuration override.
PORT_PLAIN=${CTD_REG_PORT:-5000}
PORT_TLS=${CTD_REG_TLS_PORT:-5443}
PORT_AUTH=${CTD_REG_AUTH_PORT:-5444}

BIN=$PREFIX/bin
SOCKET=$WORKDIR/containerd.sock
IMAGE=example.test/bb:1
TLS=$WORKDIR/tls
CTR=("$BIN/ctr" --address "$SOCKET" --namespace default)

log() { printf '[containerd-start] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# Starts CMD in its own session, detached from this script; PID_FILE gets
# the pid of CMD itself.
launch() {
  local pid_file=$1 log_file=$2
  shift 2
  rm -f "$pid_file"
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pid_file" "$@" \
    >>"$log_file" 2>&1 </dev/null &
  for _ in $(seq 50); do
    [ -s "$pid_file" ] && return 0
    sleep 0.1
  done
  die "could not start $3"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

[ "$(id -u)" = 0 ] || die "run as root: containerd and runc need it"
for binary in containerd ctr containerd-shim-runc-v2 runc busybox; do
  [ -x "$BIN/$binary" ] || die "$BIN/$binary is missing: run ci/containerd-setup.sh $PREFIX"
done
# AF_UNIX paths are limited to 108 bytes; shim and ttrpc paths add a suffix.
[ ${#SOCKET} -lt 100 ] || die "socket path has ${#SOCKET} bytes, the limit is 99: use a shorter WORKDIR ($SOCKET)"
touch "$WORKDIR/.containerd-transfer"

# 1. TLS material. containerd reads SSL_CERT_FILE at start, so this comes
# first.
if [ "$REGISTRY" = 1 ] && [ ! -s "$TLS/bundle.pem" ]; then
  command -v openssl >/dev/null || die "openssl is missing: run ci/containerd-setup.sh"
  mkdir -p "$TLS"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
    -subj "/CN=containerd-transfer test CA" \
    -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
  printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
    'basicConstraints=CA:FALSE' 'extendedKeyUsage=serverAuth' >"$TLS/ext.cnf"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" \
    -CAkey "$TLS/ca.key" -CAcreateserial -days 3650 \
    -extfile "$TLS/ext.cnf" -out "$TLS/server.pem" 2>/dev/null
  cat /etc/ssl/certs/ca-certificates.crt "$TLS/ca.pem" >"$TLS/bundle.pem"
  log "made a throw-away CA and server certificate in $TLS"
fi

# 2. containerd.
if running "$WORKDIR/containerd.pid"; then
  pid=$(cat "$WORKDIR/containerd.pid")
  log "containerd is already running (pid $pid)"
  if [ "$REGISTRY" = 1 ] &&
    ! tr '\0' '\n' <"/proc/$pid/environ" | grep -qxF "SSL_CERT_FILE=$TLS/bundle.pem"; then
    die "the running containerd does not trust $TLS/ca.pem: run ci/containerd-stop.sh $WORKDIR first"
  fi
else
  mkdir -p "$WORKDIR/root" "$WORKDIR/state" "$WORKDIR/opt" "$WORKDIR/runc"
  cat >"$WORKDIR/config.toml" <<TOML
# Written by ci/containerd-start.sh.
version = 2
root = "$WORKDIR/root"
state = "$WORKDIR/state"
# CRI needs CNI and is not used by the Transfer and Streaming tests.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$SOCKET"

[ttrpc]
  address = "$SOCKET.ttrpc"

[debug]
  address = "$WORKDIR/debug.sock"
  level = "$LOG_LEVEL"

[plugins."io.containerd.internal.v1.opt"]
  path = "$WORKDIR/opt"
TOML
  rm -f "$SOCKET" "$SOCKET.ttrpc" "$WORKDIR/debug.sock"
  cert_file=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
  [ "$REGISTRY" = 1 ] && cert_file=$TLS/bundle.pem
  # PATH makes containerd find PREFIX's shim, and the shim PREFIX's runc.
  launch "$WORKDIR/containerd.pid" "$WORKDIR/containerd.log" \
    env PATH="$BIN:/usr/sbin:/usr/bin:/sbin:/bin" SSL_CERT_FILE="$cert_file" \
    "$BIN/containerd" --config "$WORKDIR/config.toml"
  log "started containerd (pid $(cat "$WORKDIR/containerd.pid")), log in $WORKDIR/containerd.log"
fi
for _ in $(seq 150); do
  "${CTR[@]}" version >/dev/null 2>&1 && break
  running "$WORKDIR/containerd.pid" || die "containerd exited: see $WORKDIR/containerd.log"
  sleep 0.2
done
server_version=$("${CTR[@]}" version 2>/dev/null |
  awk '/^Server:/ { s = 1 } s && /Version:/ { print $2; exit }') ||
  true
[ -n "$server_version" ] || die "containerd did not respond on $SOCKET within 30 s: see $WORKDIR/containerd.log"
log "containerd $server_version responds on $SOCKET"

# 3. Registries.
# start_registry NAME PORT TLS(0|1) [USER:PASS]
start_registry() {
  local name=$1 port=$2 tls=$3 auth=${4:-} dir=$WORKDIR/registry-$1
  if running "$WORKDIR/registry-$name.pid"; then
    log "registry $name is already running"
    return 0
  fi
  ! port_open "$port" || die "127.0.0.1:$port is in use: set CTD_REG_*PORT"

  mkdir -p "$dir/data"
  {
    printf 'version: 0.1\nlog:\n  level: info\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s/data\n' "$dir"
    printf '  delete:\n    enabled: true\n'
    printf 'http:\n  addr: 127.0.0.1:%s\n  secret: not-a-secret\n' "$port"
    if [ "$tls" = 1 ]; then
      printf '  tls:\n    certificate: %s\n    key: %s\n' \
        "$TLS/server.pem" "$TLS/server.key"
    fi
    if [ -n "$auth" ]; then
      printf 'auth:\n  htpasswd:\n    realm: test\n    path: %s/htpasswd\n' "$dir"
    fi
  } >"$dir/config.yml"

  if [ -n "$auth" ]; then
    # The registry accepts only bcrypt entries. perl's crypt() calls
    # libcrypt, which makes one from a "$2y$" salt.
    perl -e '
      my @chars = ("a".."z", "A".."Z", 0..9, ".", "/");
      my $salt = join "", map { $chars[rand @chars] } 1..22;
      my ($user, $pass) = split /:/, $ARGV[0], 2;
      print "$user:", crypt($pass, "\$2y\$10\$$salt"), "\n";
    ' "$auth" >"$dir/htpasswd"
    grep -q ':\$2y\$10\$' "$dir/htpasswd" || die "bcrypt hashing with perl crypt() failed"
  fi

  launch "$WORKDIR/registry-$name.pid" "$WORKDIR/registry-$name.log" \
    env -i PATH=/usr/bin:/bin HOME=/ "$BIN/docker-registry" serve "$dir/config.yml"

  for _ in $(seq 50); do
    port_open "$port" && break
    running "$WORKDIR/registry-$name.pid" || die "registry $name exited: see $WORKDIR/registry-$name.log"
    sleep 0.2
  done
  port_open "$port" || die "registry $name is not listening on 127.0.0.1:$port"
  log "registry $name listens on 127.0.0.1:$port"
}
if [ "$REGISTRY" = 1 ]; then
  [ -x "$BIN/docker-registry" ] || die "$BIN/docker-registry is missing: run ci/containerd-setup.sh $PREFIX"
  start_registry plain "$PORT_PLAIN" 0
  start_registry tls "$PORT_TLS" 1
  if [ -n "$REGISTRY_AUTH" ]; then
    start_registry auth "$PORT_AUTH" 1 "$REGISTRY_AUTH"
  fi
fi

# 4. The test image, imported through the Transfer service.
if ! "${CTR[@]}" images ls -q | grep -qxF "$IMAGE"; then
  rootfs=$WORKDIR/image/rootfs
  rm -rf "$WORKDIR/image"
  mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp,root}
  (umask 022 && cp "$(readlink -f "$BIN/busybox")" "$rootfs/bin/busybox")
  chmod 0755 "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\n' >"$rootfs/etc/group"
  chmod 0755 "$rootfs" "$rootfs"/{bin,dev,etc,proc,sys}
  chmod 0644 "$rootfs"/etc/*
  chmod 1777 "$rootfs/tmp"
  chmod 0700 "$rootfs/root"
  digest=$("$(dirname "$0")/oci-image.sh" "$WORKDIR/bb-oci.tar" "$IMAGE" "$rootfs")
  log "built $WORKDIR/bb-oci.tar (manifest $digest)"
  "${CTR[@]}" images import --local=false "$WORKDIR/bb-oci.tar" \
    >"$WORKDIR/import.log" 2>&1 ||
    die "ctr images import failed: $(tail -3 "$WORKDIR/import.log")"
  "${CTR[@]}" images ls -q | grep -qxF "$IMAGE" ||
    die "image $IMAGE is missing after the import"
  log "imported $IMAGE through the Transfer service"
fi
image_digest=$("${CTR[@]}" images ls | awk -v i="$IMAGE" '$1 == i { print $3 }')

# 5. Container c1.
task_dir=$WORKDIR/state/io.containerd.runtime.v2.task/default/c1
task_status() { "${CTR[@]}" tasks ls 2>/dev/null | awk '$1 == "c1" { print $3 }'; }
if [ "$RUN_C1" = 1 ]; then
  if [ "$(task_status)" = RUNNING ]; then
    log "task c1 is already running"
  else
    "${CTR[@]}" tasks delete --force c1 >/dev/null 2>&1 || true
    "${CTR[@]}" containers delete c1 >/dev/null 2>&1 || true
    # A cgroup and runc root of our own never clash with another daemon's c1.
    cgroup=/ctd-$(printf '%s' "$WORKDIR" | sha256sum | cut -c1-12)/c1
    "${CTR[@]}" run -d --runc-binary "$BIN/runc" --runc-root "$WORKDIR/runc" \
      --cgroup "$cgroup" --log-uri "file://$WORKDIR/c1.log" \
      "$IMAGE" c1 /bin/sleep 86400 >/dev/null ||
      die "ctr run c1 failed: see $WORKDIR/containerd.log"
    for _ in $(seq 50); do
      [ "$(task_status)" = RUNNING ] && break
      sleep 0.2
    done
    [ "$(task_status)" = RUNNING ] || die "task c1 is not running: see $WORKDIR/containerd.log"
    log "task c1 is running (cgroup $cgroup)"
  fi
  [ -s "$task_dir/address" ] || die "no shim address file in $task_dir"
fi

# 6. peers.env: the facts tests need, one KEY=VALUE per line.
{
  echo "CONTAINERD_PREFIX=$PREFIX"
  echo "CONTAINERD_ADDRESS=$SOCKET"
  echo "CONTAINERD_TTRPC_ADDRESS=$SOCKET.ttrpc"
  echo "CONTAINERD_NAMESPACE=default"
  echo "CONTAINERD_PID=$(cat "$WORKDIR/containerd.pid")"
  echo "CONTAINERD_VERSION=$server_version"
  echo "CTR=$BIN/ctr"
  echo "RUNC=$BIN/runc"
  echo "TEST_IMAGE=$IMAGE"
  echo "TEST_IMAGE_DIGEST=$image_digest"
  if [ "$RUN_C1" = 1 ]; then
    echo "C1_ID=c1"
    echo "C1_ROOTFS=$task_dir/rootfs"
    echo "C1_PID=$("${CTR[@]}" tasks ls | awk '$1 == "c1" { print $2 }')"
    echo "C1_SHIM_ADDRESS=$(cat "$task_dir/address")"
  fi
  if [ "$REGISTRY" = 1 ]; then
    echo "TEST_REGISTRY_PLAIN=127.0.0.1:$PORT_PLAIN"
    echo "TEST_REGISTRY_TLS=127.0.0.1:$PORT_TLS"
    echo "TEST_REGISTRY_CA=$TLS/ca.pem"
  fi
  if [ -n "$REGISTRY_AUTH" ]; then
    echo "TEST_REGISTRY_AUTH=127.0.0.1:$PORT_AUTH"
    echo "TEST_REGISTRY_USER=${REGISTRY_AUTH%%:*}"
    echo "TEST_REGISTRY_PASSWORD=${REGISTRY_AUTH#*:}"
  fi
} >"$WORKDIR/peers.env.new"
chmod 0600 "$WORKDIR/peers.env.new"
mv "$WORKDIR/peers.env.new" "$WORKDIR/peers.env"
log "wrote $WORKDIR/peers.env"
