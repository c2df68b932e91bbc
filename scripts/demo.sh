#!/bin/sh
# The aufs experiment with glayer, on the embedded aufs-demo template, in a fresh temporary directory.
set -eu
GLAYER_BIN="$(cd "$(dirname "$0")/.." && pwd)/bin/glayer"
glayer() { "$GLAYER_BIN" "$@"; }
dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/glayer-demo.XXXXXX")}
step() { printf '\n\033[1m$ %s\033[m\n' "$*"; }
cd "$dir"
step glayer init ws --template aufs-demo;   glayer init ws --template aufs-demo
cd ws
step glayer mount-view;                     glayer mount-view
step cat view/test;                          cat view/test
step rm view/test;                           rm view/test
step glayer status;                          glayer status
step ls -A upper;                            ls -A upper
step rm upper/.wh.test;                      rm upper/.wh.test
step glayer status '(test is back)';         glayer status; cat view/test
step "echo test2 > view/test";               echo test2 > view/test
step "echo hello > view/new";                echo hello > view/new
step glayer status;                          glayer status
step ls -A upper;                            ls -A upper
step glayer commit -m "edit test, add new";  glayer commit -m "edit test, add new"
step glayer log;                             glayer log
step glayer status '(clean)';                glayer status
step glayer mount-view ../second-view;       glayer mount-view ../second-view
step "diff -r view ../second-view";          diff -r ../second-view view && echo "views are identical"
printf '\nThe workspace is %s/ws (store: .glayer, writable layer: upper/, view: view/)\n' "$dir"
