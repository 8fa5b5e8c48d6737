#!/bin/bash
# Each mode misbehaves in one way; Docket's confinement must contain it and report it clearly.
mode=$1
case "$mode" in
  loop) while :; do :; done ;;
  forkbomb)
    # perl, because bash gives up on the whole script when a fork fails.
    perl -e 'my $n = 0; for (1 .. 400) { my $pid = fork(); last unless defined $pid; if ($pid == 0) { sleep 5; exit 0 } $n++ } print "spawned: $n\n"'
    ;;
  memory) big=$(head -c 800m /dev/zero | tr '\0' 'a'); echo "${#big}" ;;
  flood) yes 'a line of output from a flooding engine' | head -c 1073741824 ;;
  identity)
    echo "uid=$(id -u)"
    echo "suid=$(/usr/local/bin/suid-id -u)"
    grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status
    echo "interfaces=$(ls /sys/class/net | tr '\n' ' ')"
    if touch /rootfs-write 2>/dev/null; then echo "rootfs=writable"; else echo "rootfs=read-only"; fi
    if echo tampered > "$DOCKET_INPUT" 2>/dev/null; then echo "input=writable"; else echo "input=read-only"; fi
    if rm -f "$DOCKET_INPUT" 2>/dev/null && [ ! -e "$DOCKET_INPUT" ]; then echo "input=removable"; else echo "input=kept"; fi
    if touch /tmp/scratch 2>/dev/null; then echo "tmp=writable"; fi
    ;;
  garbage) echo 'this is {not json' > /job/output/output.json ;;
  artifacts)
    # 300 artifacts of about 800 bytes each: more than a workflow report should carry.
    perl -e 'print q|{"success":true,"full":{},"summary":{"taxonomies":[]},"artifacts":[|, join(",", map { q|{"dataType":"note","data":"| . ("$_-" x 200) . q|"}| } 1 .. 300), "]}"' > /job/output/output.json
    ;;
  nooutput) echo "analyzer crashed before writing anything" >&2; exit 3 ;;
  bigfile) head -c 1073741824 /dev/zero > /data/result ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
