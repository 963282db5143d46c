#!/usr/bin/env bash
# containerd-setup.sh [PREFIX]
#
# Installs a private containerd 1.7 with runc, busybox and docker-registry
# into PREFIX (default /opt/ctd-peer) on Debian 12 (bookworm), as root.
# Nothing is installed system-wide except a few bookworm packages the
# binaries need (openssl, libseccomp2, ca-certificates) and an apt source
# for Debian trixie, pinned to priority 100 so that no other package is
# ever upgraded from trixie.
#
# Why trixie: bookworm's containerd is 1.6, which lacks the Transfer and
# Streaming services. Trixie's containerd 1.7.24 needs libc6 >= 2.34, so it
# runs on bookworm's 2.36. Trixie's runc needs libc6 >= 2.38, so runc comes
# from bookworm.
#
# Each package is fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` into PREFIX/root; PREFIX/bin gets symlinks to the binaries.
# Re-running is safe: a .deb already in PREFIX/debs at the candidate
# version is reused.
#
# Environment:
#   CTD_SETUP_NO_UPDATE=1  skip `apt-get update`
set -euo pipefail

PREFIX=${1:-/opt/ctd-peer}
SOURCE_FILE=/etc/apt/sources.list.d/containerd-transfer-trixie.sources
PIN_FILE=/etc/apt/preferences.d/containerd-transfer-trixie
# Package and the release it comes from.
PACKAGES=(containerd/trixie runc/bookworm busybox-static/bookworm
  docker-registry/bookworm)
HOST_PACKAGES=(ca-certificates openssl libseccomp2)

log() { printf '[containerd-setup] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

[ "$(id -u)" = 0 ] || die "run as root: apt-get and /etc/apt need it"
command -v apt-get >/dev/null || die "apt-get not found: Debian 12 expected"

# Prints the files other than ours that already configure trixie.
other_trixie_sources() {
  grep -rlsE \
    '^[[:space:]]*(Suites:.*[[:space:]]trixie([[:space:]]|$)|deb[[:space:]].*[[:space:]]trixie[[:space:]])' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    grep -vxF "$SOURCE_FILE" || true
}

# Prints the Debian mirror that the machine uses for bookworm.
bookworm_mirror() {
  local mirror
  mirror=$(awk '/^URIs:/ { print $2; exit }' \
    /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm/ { print $2; exit }' \
      /etc/apt/sources.list 2>/dev/null || true)
  fi
  printf '%s' "$mirror"
}

# Writes FILE with CONTENT unless it already has exactly that content.
write_if_changed() {
  local file=$1 content=$2
  if [ "$(cat "$file" 2>/dev/null)" != "$content" ]; then
    printf '%s\n' "$content" >"$file"
    log "wrote $file"
  fi
}

# 1. The trixie source, unless another file already configures one.
others=$(other_trixie_sources)
if [ -n "$others" ]; then
  log "trixie is already configured in $others"
  rm -f "$SOURCE_FILE"
else
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || die "$keyring is missing: install debian-archive-keyring"
  mirror=$(bookworm_mirror)
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d/debian.sources}"
  write_if_changed "$SOURCE_FILE" "$(printf '%s\n' \
    'Types: deb' "URIs: $mirror" 'Suites: trixie' 'Components: main' \
    "Signed-By: $keyring")"
fi

# 2. The pin: trixie packages are taken only when named as pkg/trixie.
write_if_changed "$PIN_FILE" "$(printf '%s\n' \
  '# containerd-transfer CI: never upgrade from trixie unless asked' \
  'Package: *' 'Pin: release n=trixie' 'Pin-Priority: 100')"

# 3. Package lists and the host packages the binaries need.
if [ "${CTD_SETUP_NO_UPDATE:-0}" != 1 ]; then
  log "apt-get update"
  apt-get update -qq >/dev/null || die "apt-get update failed"
fi
missing=()
for package in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
    grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
fi

# 4. Download and unpack each package.
mkdir -p "$PREFIX/debs" "$PREFIX/root" "$PREFIX/bin"
# apt-get download runs as the _apt user, which must be able to write here.
if id _apt >/dev/null 2>&1; then chown _apt "$PREFIX/debs"; fi
cd "$PREFIX/debs"
: >"$PREFIX/VERSIONS.new"
for spec in "${PACKAGES[@]}"; do
  package=${spec%/*}
  release=${spec#*/}
  # madison lines read " name | version | mirror release/main arch Packages".
  version=$(apt-cache madison "$package" | awk -F' *[|] *' -v r="$release" \
    '!v && $3 ~ ("(^| )" r "(/| )") { v = $2 } END { print v }')
  [ -n "$version" ] || die "$package not found in $release: check the apt source and run apt-get update"
  deb=
  for file in "${package}"_*.deb; do
    if [ -f "$file" ] && [ "$(dpkg-deb -f "$file" Version)" = "$version" ]; then
      deb=$file
    fi
  done
  if [ -z "$deb" ]; then
    log "apt-get download $package=$version ($release)"
    rm -f "${package}"_*.deb
    apt-get download -qq "$package=$version" >/dev/null ||
      die "apt-get download $package=$version failed"
    deb=$(ls "${package}"_*.deb)
  fi
  dpkg-deb -x "$deb" "$PREFIX/root"
  printf '%s %s %s\n' "$package" "$version" "$release" >>"$PREFIX/VERSIONS.new"
done
mv "$PREFIX/VERSIONS.new" "$PREFIX/VERSIONS"

# 5. PREFIX/bin: one symlink per binary, to the first path that exists.
link() {
  local name=$1 candidate
  shift
  for candidate in "$@"; do
    if [ -x "$PREFIX/root/$candidate" ] && [ ! -L "$PREFIX/root/$candidate" ]; then
      ln -sfn "../root/$candidate" "$PREFIX/bin/$name"
      return 0
    fi
  done
  die "$name not found under $PREFIX/root (looked for $*)"
}
link containerd usr/bin/containerd
link ctr usr/bin/ctr
link containerd-shim-runc-v2 usr/bin/containerd-shim-runc-v2
link runc usr/sbin/runc usr/bin/runc
link busybox bin/busybox usr/bin/busybox
link docker-registry usr/bin/docker-registry

# 6. Checks: shared libraries present and the daemon really 1.7.
unresolved=$(ldd "$PREFIX/bin/runc" "$PREFIX/bin/docker-registry" 2>/dev/null |
  grep 'not found' || true)
[ -z "$unresolved" ] || die "missing shared libraries: $unresolved"
version=$("$PREFIX/bin/containerd" --version)
case "$version" in
  *" 1.7."*) ;;
  *) die "containerd in $PREFIX is not 1.7: $version" ;;
esac

log "installed into $PREFIX:"
cat "$PREFIX/VERSIONS" >&2
