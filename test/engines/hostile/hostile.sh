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
  noisy) echo 'a line on stdout'; echo 'a line on stderr' >&2; exit 2 ;;
  artifacts)
    # 300 artifacts of about 800 bytes each: more than a workflow report should carry.
    perl -e 'print q|{"success":true,"full":{},"summary":{"taxonomies":[]},"artifacts":[|, join(",", map { q|{"dataType":"note","data":"| . ("$_-" x 200) . q|"}| } 1 .. 300), "]}"' > /job/output/output.json
    ;;
  nooutput) echo "analyzer crashed before writing anything" >&2; exit 3 ;;
  bigfile) head -c 1073741824 /dev/zero > /data/result ;;
  fill)
    # 300 MB in five files, each under the fsize ulimit, then 300 MB into /tmp: only the job volume's
    # cap and the size of /tmp stop them. Each line says how far a write got, then what the disks hold.
    for i in 1 2 3 4 5; do
      if head -c 60m /dev/zero > "/job/output/big$i" 2>/dev/null; then echo "output big$i: written"; else echo "output big$i: refused"; fi
    done
    for i in 1 2 3 4 5; do
      if (head -c 60m /dev/zero > "/tmp/big$i") 2>/dev/null; then echo "tmp big$i: written"; else echo "tmp big$i: refused"; fi
    done
    echo "job bytes: $(df -B1 --output=used,size /job | tail -1)"
    echo "tmp bytes: $(df -B1 --output=used,size /tmp | tail -1)"
    ;;
  smallfiles)
    # Up to 100000 one-byte files, then up to 100000 empty ones (which take an inode and no space).
    small=0
    while [ $small -lt 100000 ] && echo x 2>/dev/null > "/job/output/s$small"; do small=$((small + 1)); done
    empty=0
    while [ $empty -lt 100000 ] && : 2>/dev/null > "/job/output/e$empty"; do empty=$((empty + 1)); done
    echo "small files: $small"
    echo "empty files: $empty"
    echo "job bytes: $(df -B1 --output=used,size /job | tail -1)"
    echo "job inodes: $(df --output=iused,itotal /job | tail -1)"
    ;;
  connect)
    # One TCP connection to $2:$3: the listener's greeting, or "blocked".
    if timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" && head -c 5 <&3' "$2" "$3" 2>/dev/null; then echo " connected"; else echo "blocked"; fi
    ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
