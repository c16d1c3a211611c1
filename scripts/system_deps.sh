#!/bin/sh
# Install the Debian packages given as arguments (the Makefile's SYSTEM_PACKAGES:
# a virtual display, software OpenGL and the xcb libraries Qt loads) that are
# not installed yet. Each package is checked, not one program: a machine with
# xvfb but without libxcb-icccm4 fails at Qt's start, not here.
set -u
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for package in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)
        [ "$status" = "install ok installed" ] || missing="$missing $package"
    done
elif ! command -v xvfb-run >/dev/null 2>&1; then
    echo "xvfb-run is missing and this is not a Debian system (no dpkg-query):" \
        "install Xvfb, xauth, Mesa's OpenGL and Qt's xcb libraries" \
        "(Debian names: $*)" >&2
    exit 1
fi
[ -z "$missing" ] && exit 0
echo "installing Debian packages for a virtual display:$missing"
if ! { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }; then
    echo "could not install:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
