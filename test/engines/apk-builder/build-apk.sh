#!/bin/sh
# Reads a tar of an app folder (AndroidManifest.xml, optional res/) on stdin and writes the APK that
# aapt packages from it to stdout; anything aapt says goes to stderr.
set -eu
work=$(mktemp -d)
mkdir "$work/app"
tar -x -C "$work/app"
set -- package -f -M "$work/app/AndroidManifest.xml" -I /usr/share/android-framework-res/framework-res.apk -F "$work/app.apk"
if [ -d "$work/app/res" ]; then set -- "$@" -S "$work/app/res"; fi
aapt "$@" >&2
cat "$work/app.apk"
