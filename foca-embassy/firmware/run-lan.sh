#!/usr/bin/env bash
# Three QEMU mps2-an386 instances, each running the `lan` firmware (one
# foca-embassy agent over the LAN9118), on one QEMU network: a multicast
# socket backend on 127.0.0.1. Passes if every instance exits with status 0
# (the cluster formed; the survivors saw the third member stop).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --features lan --bin lan
elf=target/thumbv7em-none-eabihf/release/lan
group="230.0.$((RANDOM % 250)).$((RANDOM % 250 + 1)):$((20000 + RANDOM % 20000))"
pids=()
for n in 1 2 3; do
  # Real time (no -icount): the instances must share one clock.
  timeout 120 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native \
    -nic "socket,mcast=$group,localaddr=127.0.0.1,mac=52:54:00:12:34:0$n" \
    -kernel "$elf" </dev/null >"target/lan-$n.log" 2>&1 &
  pids+=($!)
done
status=0
for n in 1 2 3; do
  if wait "${pids[$((n - 1))]}"; then result=ok; else result="FAILED"; status=1; fi
  echo "--- instance $n: $result"
  cat "target/lan-$n.log"
done
exit $status
