#!/usr/bin/env bash
# `winre scan` of the 64 GiB fixture disk read in place over each kind of server, beside the scan
# of the same file on local disk: requests made, bytes fetched and mean time (hyperfine).
# Target: at most 40 requests and 8 MiB fetched per image.
#
# The disk is scan-vs-manual.sh's (the gpt-after fixture grown to 64 GiB, its recovery
# partition moved to the end), stored as a fixed VHD (a raw disk plus a footer: what Azure keeps
# as a page blob) and a dynamic VHD (what an S3 export holds). Servers, all on 127.0.0.1:
#   nginx   serves the fixed VHD from disk (HTTP range requests)
#   moto    S3, holding the dynamic VHD
#   Azurite Azure Blob, holding the fixed VHD as a page blob (only its data pages written)
#
# Usage: benches/remote-scan.sh [--runs N]   (needs: cargo build --release, or WINRE=path/to/winre;
# nginx, moto[server] and azurite installed as .ci/run does)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=5
[ "${1:-}" = --runs ] && runs=$2
for tool in hyperfine qemu-img sgdisk jq python3 curl; do
  command -v "$tool" >/dev/null || { echo "remote-scan.sh: $tool is missing" >&2; exit 1; }
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "remote-scan.sh: nginx is missing (apt install nginx)" >&2; exit 1; }
azurite="$root/fixtures/cache/npm/node_modules/.bin/azurite-blob"
[ -x "$azurite" ] || azurite=$(command -v azurite-blob) || { echo "remote-scan.sh: azurite-blob is missing (see .ci/run)" >&2; exit 1; }
export PYTHONPATH="$root/fixtures/cache/pip${PYTHONPATH:+:$PYTHONPATH}"
python3 -c 'import moto.server' || { echo "remote-scan.sh: moto[server] is missing (see .ci/run)" >&2; exit 1; }
winre="${WINRE:-$root/target/release/winre}"
[ -x "$winre" ] || { echo "remote-scan.sh: build first: cargo build --release (or set WINRE=path/to/winre)" >&2; exit 1; }
fixtures=$(bash "$root/fixtures/make-winre-disks.sh")
work=$(mktemp -d "${TMPDIR:-/tmp}/winre-remote-bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# The 64 GiB disk, as in scan-vs-manual.sh.
big="$work/big.img"
cp --sparse=always "$fixtures/gpt-after.img" "$big"
truncate -s 64G "$big"
sgdisk -e "$big" >/dev/null
rec_start=$(sgdisk -i 4 "$big" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
rec_sectors=$(sgdisk -i 4 "$big" | sed -n 's/^Partition size: \([0-9]*\).*/\1/p')
last=$(sgdisk -E "$big" | tail -1)
new_start=$(((last + 1 - rec_sectors) / 2048 * 2048))
dd if="$fixtures/gpt-after.p4.img" of="$big" bs=512 seek="$new_start" conv=notrunc,sparse status=none
dd if=/dev/zero of="$big" bs=512 seek="$rec_start" count=2048 conv=notrunc status=none
sgdisk -d 4 -n 4:"$new_start":+"$rec_sectors" -u 4:5a1c0004-0000-4000-8000-000000000004 -t 4:2700 -A 4:set:0 -A 4:set:63 "$big" >/dev/null
mkdir "$work/www"
fixed="$work/www/big-fixed.vhd"
dynamic="$work/www/big-dynamic.vhd"
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on -S 4k "$big" "$fixed"
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$big" "$dynamic"
rm "$big"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "remote-scan.sh: $2 did not start on port $1" >&2; exit 1
}

# nginx
np=$(free_port)
mkdir "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
daemon off; user root; worker_processes 1; pid $work/nginx/pid; error_log $work/nginx/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $work/nginx/b; proxy_temp_path $work/nginx/p;
  fastcgi_temp_path $work/nginx/f; uwsgi_temp_path $work/nginx/u; scgi_temp_path $work/nginx/s;
  server { listen 127.0.0.1:$np; root $work/www; } }
CONF
"$nginx" -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>/dev/null & pids+=($!)
# moto
mp=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$mp" >/dev/null 2>&1 & pids+=($!)
# Azurite
ap=$(free_port)
(cd "$work" && exec "$azurite" --blobHost 127.0.0.1 --blobPort "$ap" --inMemoryPersistence --silent --skipApiVersionCheck) >/dev/null 2>&1 & pids+=($!)
wait_port "$np" nginx; wait_port "$mp" moto; wait_port "$ap" Azurite

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AZURE_STORAGE_ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
python3 "$root/tests/remote/upload.py" s3 "http://127.0.0.1:$mp" bench big-dynamic.vhd "$dynamic"
python3 "$root/tests/remote/upload.py" azure-page "http://127.0.0.1:$ap/devstoreaccount1" devstoreaccount1 vhds big-fixed.vhd "$fixed"

printf '%-34s %9s %12s %10s\n' image requests "MiB fetched" "mean ms"
row() { # label, then winre scan arguments
  local label=$1; shift
  local json
  json=$("$winre" scan --json "$@")
  echo "$json" | jq -e '.winre.status == "enabled"' >/dev/null || { echo "remote-scan.sh: no WinRE found via $label: $json" >&2; exit 1; }
  hyperfine --runs "$runs" --warmup 1 -N --export-json "$work/h.json" "$winre scan --json $*" >/dev/null
  printf '%-34s %9s %12.2f %10.1f\n' "$label" "$(echo "$json" | jq -r '.stats.requests // "-"')" \
    "$(echo "$json" | jq '(.stats.bytes_fetched // .stats.bytes_read) / 1048576')" \
    "$(jq '.results[0].mean * 1000' "$work/h.json")"
}
row "local fixed VHD (bytes read)" "$fixed"
row "local dynamic VHD (bytes read)" "$dynamic"
row "nginx  http:// fixed VHD" "http://127.0.0.1:$np/big-fixed.vhd"
row "nginx  http:// dynamic VHD" "http://127.0.0.1:$np/big-dynamic.vhd"
row "moto   s3:// dynamic VHD" "s3://bench/big-dynamic.vhd" --s3-endpoint "http://127.0.0.1:$mp"
row "Azurite az:// page blob (fixed VHD)" "az://devstoreaccount1/vhds/big-fixed.vhd" --az-endpoint "http://127.0.0.1:$ap/devstoreaccount1"
