#!/usr/bin/env bash
# Mechanical portability check for the packaged binary: it must run on glibc 2.28
# (RHEL/Rocky 8). Passes when the ELF is statically linked (no NEEDED entry, no
# interpreter), or when no dynamic symbol needs a glibc version newer than MAX.
#   check-glibc.sh BINARY [MAX=2.28]
set -euo pipefail
bin=${1:?usage: check-glibc.sh BINARY [MAX_GLIBC]}
max=${2:-2.28}

for tool in readelf objdump; do
  command -v "$tool" >/dev/null || { echo "check-glibc: $tool missing (apt-get install binutils)" >&2; exit 2; }
done

needed=$(readelf -d "$bin" 2>/dev/null | awk '/\(NEEDED\)/{print $NF}' | tr -d '[]' | paste -sd' ' -)
interp=$(readelf -l "$bin" | awk '/Requesting program interpreter/{print $NF}' | tr -d '[]')
# Highest GLIBC_x.y version any dynamic symbol references (empty for a static binary).
newest=$(objdump -T "$bin" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1 || true)

if [[ -z $needed && -z $interp ]]; then
  echo "check-glibc: $bin is statically linked (no NEEDED, no interpreter): runs on any glibc >= kernel 3.2 ABI"
  exit 0
fi
if [[ -z $newest ]]; then
  echo "check-glibc: $bin links $needed but references no versioned glibc symbol" >&2
  exit 0
fi
if [[ $(printf '%s\n%s\n' "$newest" "$max" | sort -V | tail -n1) != "$max" ]]; then
  echo "check-glibc: FAIL: $bin needs GLIBC_$newest (> $max); symbols:" >&2
  objdump -T "$bin" | grep -E "GLIBC_$newest\b" | head -20 >&2
  exit 1
fi
echo "check-glibc: $bin is dynamic ($needed) and needs at most GLIBC_$newest (<= $max)"
