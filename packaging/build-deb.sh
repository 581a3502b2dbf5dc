#!/usr/bin/env bash
# Build the Debian packages (ksp11, ksp11-dev) out of tree:
#
#   packaging/build-deb.sh [--lintian] [OUTDIR]      (default OUTDIR: build/deb)
#
# dpkg-buildpackage wants debian/ at the top of the source tree. This copies
# the tree (in a git checkout: the tracked and the untracked-but-not-ignored
# files, so uncommitted edits are built; never build/) to a temporary
# directory, puts packaging/debian there as ./debian, runs
# `dpkg-buildpackage -us -uc -b` in it and copies the .deb, .changes and
# .buildinfo files to OUTDIR. The repository is left as it was.
# DEB_BUILD_OPTIONS passes through (nocheck skips the unit tests,
# parallel=N); without parallel= it builds with -j2.
# --lintian: run lintian on the result; exit 1 on errors or warnings.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LINTIAN=0
if [ "${1:-}" = --lintian ]; then
    LINTIAN=1
    shift
fi
OUT=${1:-$ROOT/build/deb}
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac

for c in dpkg-buildpackage dpkg-parsechangelog dh fakeroot; do
    command -v "$c" >/dev/null 2>&1 || {
        echo "build-deb: $c not found (scripts/install-deps.sh installs it)" >&2
        exit 1
    }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ksp11-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

version=$(dpkg-parsechangelog -l "$ROOT/packaging/debian/changelog" -S Version)
SRC=$WORK/ksp11-$version
mkdir -p "$SRC"

if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Files deleted in the work tree but still tracked are left out.
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do
            [ -e "$f" ] && printf '%s\0' "$f"
        done | tar --null -T - -cf -) | tar -C "$SRC" -xf -
else
    tar -C "$ROOT" --exclude=./build --exclude=./.git --exclude=./debian -cf - . |
        tar -C "$SRC" -xf -
fi
rm -rf "$SRC/build" "$SRC/debian"
cp -a "$SRC/packaging/debian" "$SRC/debian"

case " ${DEB_BUILD_OPTIONS:-} " in
*" parallel="*) jobs=() ;;
*) jobs=(-j2) ;;
esac
(cd "$SRC" && dpkg-buildpackage -us -uc -b "${jobs[@]}")

mkdir -p "$OUT"
shopt -s nullglob
files=("$WORK"/*.deb "$WORK"/*.changes "$WORK"/*.buildinfo)
if [ ${#files[@]} -eq 0 ]; then
    echo "build-deb: dpkg-buildpackage made no packages" >&2
    exit 1
fi
cp "${files[@]}" "$OUT"/
echo "build-deb: packages in $OUT:"
for f in "$WORK"/*.deb; do
    echo "  $(basename "$f")"
done

if [ "$LINTIAN" -eq 1 ]; then
    changes=("$OUT"/ksp11_"${version}"_*.changes)
    lintian --fail-on error,warning --info "${changes[@]}"
fi
