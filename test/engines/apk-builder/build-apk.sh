#!/bin/sh
# Reads a tar of an app folder (AndroidManifest.xml, optional res/ and assets/) on stdin and writes
# the APK that aapt packages from it to stdout; anything aapt says goes to stderr.
# --filler-mb N adds N MiB of random bytes as an asset, for an APK larger than a decode can hold.
set -eu
filler_mb=0
if [ "${1:-}" = "--filler-mb" ]; then filler_mb=$2; fi
work=$(mktemp -d)
mkdir "$work/app"
tar -x -C "$work/app"
if [ "$filler_mb" -gt 0 ]; then
  mkdir -p "$work/app/assets"
  head -c "${filler_mb}M" /dev/urandom > "$work/app/assets/filler.bin"
fi
# -0 bin: random filler does not compress; storing it saves aapt the attempt.
set -- package -f -0 bin -M "$work/app/AndroidManifest.xml" -I /usr/share/android-framework-res/framework-res.apk -F "$work/app.apk"
if [ -d "$work/app/res" ]; then set -- "$@" -S "$work/app/res"; fi
if [ -d "$work/app/assets" ]; then set -- "$@" -A "$work/app/assets"; fi
aapt "$@" >&2
cat "$work/app.apk"
