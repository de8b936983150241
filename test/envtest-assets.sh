#!/usr/bin/env bash
# Prepares the real-API-server test assets in the envtest layout and prints KUBEBUILDER_ASSETS for them:
#
#   export KUBEBUILDER_ASSETS="$(bash test/envtest-assets.sh)" && npm test
#
# For every kube-apiserver build pinned below it unpacks <shared>/kube-apiserver-<version>.xz into
# .envtest/<version>/kube-apiserver (git-ignored), checks its sha256, and links etcd beside it; it
# prints the directories joined with ':' (the test harness, test/support/envtest.ts, runs every
# real-API-server suite once per directory). Unpacking is skipped when the binary is already there
# with the right checksum, so a second run costs a few checksums.
#
# <shared> is $ENVTEST_SHARED_DIR, else shared/envtest in the nearest folder above the repository
# that has one: ../shared/envtest for CI's checkout, which sits beside shared/, and further up for a
# git worktree kept in a subfolder. etcd is $TEST_ASSET_ETCD, else etcd on
# PATH (Debian: apt-get install etcd-server). Everything but the final line goes to standard error.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="${ENVTEST_SHARED_DIR:-}"
if [ -z "$shared" ]; then
  up="$(dirname "$repo")"
  while :; do
    if [ -d "$up/shared/envtest" ]; then shared="$up/shared/envtest"; break; fi
    [ "$up" = / ] && break
    up="$(dirname "$up")"
  done
fi
out="$repo/.envtest"

# version → sha256 of the unpacked binary (from the shared folder's README; a file that does not
# match is refused, never run).
declare -A SHA256=(
  [v1.26.1]=f0b4cdf558153128090e1bab10a56f5fd6c263b4c73e91437efde52a46611fb6
  [v1.30.0]=e5fcf377dfd28d27b5254698f71fe7f1f8ca0c4a1e19168389a9f07652496c6a
)
VERSIONS=(v1.26.1 v1.30.0)

fail() {
  echo "test/envtest-assets.sh: $*" >&2
  exit 1
}

[ -n "$shared" ] || fail "no shared/envtest folder beside $repo or above it (CI expects ../shared/envtest, holding kube-apiserver-<version>.xz); set ENVTEST_SHARED_DIR to where it is"
[ -d "$shared" ] || fail "ENVTEST_SHARED_DIR=$shared is not a directory"
command -v xz >/dev/null 2>&1 || fail "xz is missing (Debian: apt-get install xz-utils)"
command -v sha256sum >/dev/null 2>&1 || fail "sha256sum is missing (Debian: apt-get install coreutils)"

etcd="${TEST_ASSET_ETCD:-$(command -v etcd || true)}"
[ -n "$etcd" ] && [ -x "$etcd" ] || fail "etcd not found (Debian: apt-get install etcd-server, or set TEST_ASSET_ETCD to an etcd binary)"
etcd="$(readlink -f "$etcd")"

dirs=()
for version in "${VERSIONS[@]}"; do
  archive="$shared/kube-apiserver-$version.xz"
  want="${SHA256[$version]}"
  dir="$out/$version"
  binary="$dir/kube-apiserver"
  [ -f "$archive" ] || fail "$archive is missing"
  mkdir -p "$dir"
  if [ ! -f "$binary" ] || [ "$(sha256sum "$binary" | cut -d' ' -f1)" != "$want" ]; then
    echo "unpacking $archive into $dir" >&2
    tmp="$(mktemp "$dir/.kube-apiserver.XXXXXX")"
    # Unpacked beside its final place and renamed only once its checksum is right, so an interrupted
    # run never leaves a half-written or unverified binary where the tests look.
    if ! xz -dc "$archive" >"$tmp"; then
      rm -f "$tmp"
      fail "cannot unpack $archive"
    fi
    got="$(sha256sum "$tmp" | cut -d' ' -f1)"
    if [ "$got" != "$want" ]; then
      rm -f "$tmp"
      fail "$archive unpacks to a binary with sha256 $got, expected $want: refusing to use it"
    fi
    chmod 0755 "$tmp"
    mv -f "$tmp" "$binary"
  fi
  ln -sfn "$etcd" "$dir/etcd"
  dirs+=("$dir")
done

(IFS=:; echo "${dirs[*]}")
