#!/usr/bin/env bash
# Idle CPU of two agent binaries side by side (issue 17: event sources must cost at most
# 1.5 × the agent's idle CPU without them). Both agents run at the default 5 s interval
# with one patroni probe whose REST port a local python3 listener serves (so the "after"
# binary arms its process watch on it) and one unreachable manager; both do the same
# probe and push work, so the difference is what the event sources cost.
#
# Usage: bench/idle-cpu.sh BEFORE_BIN AFTER_BIN [SECONDS]   (default 60)
# Prints utime+stime per second of wall time for each, from /proc/PID/stat.
set -euo pipefail
BEFORE=$1 AFTER=$2 SECS=${3:-60}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
python3 -c 'import socket,time
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1],flush=True)
while True:
    c,_=s.accept(); c.close()' > "$work/port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
openssl req -x509 -newkey ed25519 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -subj /CN=ca -days 2 2>/dev/null
# The agent's key is PKCS#8 v2 (with the public key), which openssl does not write.
python3 -c 'import sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization as s
k=Ed25519PrivateKey.generate()
der=k.private_bytes(s.Encoding.DER,s.PrivateFormat.PKCS8,s.NoEncryption())
pub=k.public_key().public_bytes(s.Encoding.Raw,s.PublicFormat.Raw)
# v1 body + [1] publicKey, version 1: rewrite the outer SEQUENCE by hand.
body=bytes([2,1,1])+der[5:]+bytes([0x81,33,0])+pub
import base64
out=bytes([0x30,len(body)])+body
print("-----BEGIN PRIVATE KEY-----\n"+base64.b64encode(out).decode()+"\n-----END PRIVATE KEY-----")' > "$work/node.key"
for who in before after; do
  cat > "$work/$who.toml" <<TOML
node_type = "db"
node_id = "idle-$who"
node_name = "idle-$who"
token = "t"
ca_path = "$work/ca.pem"
managers = ["127.0.0.1:1"]
key_path = "$work/node.key"
state_dir = "$work/state-$who"

[[probes]]
kind = "patroni"
url = "http://127.0.0.1:$port"
member = "m1"
TOML
done
"$BEFORE" run --config "$work/before.toml" 2>"$work/before.log" & pids+=($!); b=$!
"$AFTER" run --config "$work/after.toml" 2>"$work/after.log" & pids+=($!); a=$!
sleep 10 # warm-up: the first cycles and, for "after", the watch armed
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
b0=$(ticks $b) a0=$(ticks $a) t0=$(date +%s.%N)
sleep "$SECS"
b1=$(ticks $b) a1=$(ticks $a) t1=$(date +%s.%N)
python3 - "$b0" "$b1" "$a0" "$a1" "$t0" "$t1" "$hz" <<'PY'
import sys
b0,b1,a0,a1=map(int,sys.argv[1:5]); t0,t1=map(float,sys.argv[5:7]); hz=int(sys.argv[7])
w=t1-t0
before=(b1-b0)/hz/w*1000; after=(a1-a0)/hz/w*1000
print(f"idle CPU over {w:.0f} s: before {before:.3f} ms/s, after {after:.3f} ms/s, ratio {after/before if before else float('nan'):.2f}")
PY
grep -c "watching the process serving the probe" "$work/after.log" | sed 's/^/after: watches armed: /'
