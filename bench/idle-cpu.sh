#!/usr/bin/env bash
# Idle CPU of two agent binaries side by side (issue 17: event sources must cost at most
# 1.5 × the agent's idle CPU without them). Both agents run at the default 5 s interval
# with one patroni probe whose REST port a local python3 listener serves (so the "after"
# binary arms its process watch on it) and one unreachable manager; both do the same
# probe and push work, so the difference is what the event sources cost.
#
# Usage: bench/idle-cpu.sh BEFORE_BIN AFTER_BIN [SECONDS]   (default 60)
# Optional environment: EXTRA_TOML, TOML appended to both configs (more [[probes]], e.g. a
# postgres probe on a running server); BEFORE_TOML and AFTER_TOML, appended to one config
# each (an [events] table: the same binary twice, one source off and on); PROBE_TOML,
# replaces the script's patroni probe on the local listener (e.g. a patroni probe on a real
# Patroni, for the fast poll: that listener answers nothing a poll could fingerprint).
# Prints CPU time per second of wall time for each: the sum of /proc/PID/task/*/schedstat
# (nanoseconds; threads alive at both ends) and utime+stime from /proc/PID/stat (clock
# ticks: 10 ms, too coarse alone for an agent that is idle most of the time).
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
TOML
  if [ -n "${PROBE_TOML:-}" ]; then
    printf '\n%s\n' "$PROBE_TOML" >> "$work/$who.toml"
  else
    printf '\n[[probes]]\nkind = "patroni"\nurl = "http://127.0.0.1:%s"\nmember = "m1"\n' "$port" >> "$work/$who.toml"
  fi
  printf '%s\n' "${EXTRA_TOML:-}" >> "$work/$who.toml"
done
printf '%s\n' "${BEFORE_TOML:-}" >> "$work/before.toml"
printf '%s\n' "${AFTER_TOML:-}" >> "$work/after.toml"
"$BEFORE" run --config "$work/before.toml" 2>"$work/before.log" & pids+=($!); b=$!
"$AFTER" run --config "$work/after.toml" 2>"$work/after.log" & pids+=($!); a=$!
sleep 10 # warm-up: the first cycles and, for "after", the watch armed
# "tid:ns ..." for every thread, and the process's utime+stime in ticks.
snap() { for t in /proc/$1/task/*; do printf '%s:%s ' "${t##*/}" "$(cut -d' ' -f1 "$t/schedstat")"; done; echo; awk '{print $14+$15}' "/proc/$1/stat"; }
snap $b > "$work/b0"; snap $a > "$work/a0"; t0=$(date +%s.%N)
sleep "$SECS"
snap $b > "$work/b1"; snap $a > "$work/a1"; t1=$(date +%s.%N)
python3 - "$work" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import sys
work,t0,t1,hz=sys.argv[1],float(sys.argv[2]),float(sys.argv[3]),int(sys.argv[4])
w=t1-t0
def load(n):
    lines=open(f"{work}/{n}").read().split("\n")
    return dict(x.split(":") for x in lines[0].split()), int(lines[1])
out={}
for who in ("b","a"):
    (s0,k0),(s1,k1)=load(who+"0"),load(who+"1")
    ns=sum(int(s1[t])-int(s0[t]) for t in s1 if t in s0)
    out[who]=(ns/1e6/w, (k1-k0)/hz*1000/w)
(bs,bk),(as_,ak)=out["b"],out["a"]
print(f"idle CPU over {w:.0f} s (schedstat): before {bs:.3f} ms/s, after {as_:.3f} ms/s, ratio {as_/bs:.2f}")
print(f"idle CPU over {w:.0f} s (utime+stime ticks): before {bk:.2f} ms/s, after {ak:.2f} ms/s")
PY
grep -c "watching the process serving the probe" "$work/after.log" | sed 's/^/after: watches armed: /'
grep -c "holding a watched session" "$work/after.log" | sed 's/^/after: sessions opened: /' || true
grep -c "polling cheap endpoints" "$work/after.log" | sed 's/^/after: fast polls started: /' || true
grep -c "a polled endpoint's answer changed" "$work/after.log" | sed 's/^/after: fast poll wake-ups: /' || true
