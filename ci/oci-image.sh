#!/usr/bin/env bash
# oci-image.sh OUT_TAR IMAGE_NAME ROOTFS_DIR
#
# Writes an OCI image layout archive with one uncompressed layer made from
# ROOTFS_DIR, and prints the manifest digest. The same folder content gives
# a byte-identical archive: tar entries are sorted by name, with mtime 0 and
# owner 0:0. The index entry carries the annotation
# io.containerd.image.name=IMAGE_NAME, which `ctr images import` uses as the
# image name.
#
# Environment:
#   IMAGE_CMD  the image's Cmd as a JSON array (default ["/bin/sh"])
set -euo pipefail

[ $# -eq 3 ] || {
  echo "usage: $0 OUT_TAR IMAGE_NAME ROOTFS_DIR" >&2
  exit 2
}
out=$1
name=$2
rootfs=$3
[ -d "$rootfs" ] || {
  echo "$0: $rootfs is not a directory" >&2
  exit 2
}
cmd=${IMAGE_CMD:-'["/bin/sh"]'}
tag=${name##*:}
case "$tag" in
  "$name" | */*) tag=latest ;;
esac
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(dpkg --print-architecture) ;;
esac

umask 022
work=$(mktemp -d "${out}.XXXXXX")
trap 'rm -rf "$work"' EXIT
blobs=$work/layout/blobs/sha256
mkdir -p "$blobs"
TAR=(tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner
  --format=gnu)

# Moves FILE into the blob store and sets DIGEST and SIZE.
add_blob() {
  SIZE=$(stat -c %s "$1")
  DIGEST=sha256:$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$blobs/${DIGEST#sha256:}"
}

# The layer lists the top-level entries by name, so paths carry no "./".
mapfile -t entries < <(cd "$rootfs" && LC_ALL=C ls -A)
"${TAR[@]}" -C "$rootfs" -cf "$work/layer.tar" -- "${entries[@]}"
add_blob "$work/layer.tar"
layer_digest=$DIGEST
layer_size=$SIZE

cat >"$work/config.json" <<JSON
{"architecture":"$arch","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":$cmd,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["$layer_digest"]}}
JSON
add_blob "$work/config.json"
config_digest=$DIGEST
config_size=$SIZE

cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$layer_digest","size":$layer_size}]}
JSON
add_blob "$work/manifest.json"
manifest_digest=$DIGEST
manifest_size=$SIZE

cat >"$work/layout/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$manifest_digest","size":$manifest_size,"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"$tag"},"platform":{"architecture":"$arch","os":"linux"}}]}
JSON
printf '{"imageLayoutVersion":"1.0.0"}\n' >"$work/layout/oci-layout"

"${TAR[@]}" -C "$work/layout" -cf "$work/image.tar" oci-layout index.json blobs
mv "$work/image.tar" "$out"
echo "$manifest_digest"
