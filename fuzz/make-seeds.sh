#!/usr/bin/env bash
# Builds small seed inputs for every fuzz target with the independent tools the fixtures use
# (wimlib-imagex, qemu-img, ewfacquire, mkntfs, sgdisk, sfdisk, python3-hivex), into
# fuzz/seeds/<target>/ (not committed). The committed fuzz/corpus/<target>/ is these seeds plus
# what fuzzing found, minimized with `cargo fuzz cmin` (see fuzz/README.md).
#
# Usage: fuzz/make-seeds.sh [OUT_DIR]     (default fuzz/seeds)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/seeds}"
for tool in wimlib-imagex qemu-img ewfacquire mkntfs sgdisk sfdisk python3 truncate; do
    command -v "$tool" >/dev/null || { echo "make-seeds.sh: $tool is missing" >&2; exit 1; }
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"
seed() { mkdir -p "$out/$1"; cp "$2" "$out/$1/$3"; }
quiet() { "$@" >/dev/null 2>&1 || { echo "make-seeds.sh: failed: $*" >&2; "$@"; exit 1; }; }

# --- WIMs: a tiny tree, every compression, with and without an integrity table, two images.
src="$tmp/tree"
mkdir -p "$src/Windows/System32/Recovery" "$src/dir"
printf 'hello winre\n' >"$src/dir/file.txt"
python3 -c 'import sys; sys.stdout.write("".join("line %d of a repetitive text file\n" % i for i in range(1500)))' >"$src/big.bin"
head -c 3000 /dev/zero | tr '\0' 'A' >"$src/dir/runs.txt"
printf '<WindowsRE version="2.0"><InstallState state="1"/></WindowsRE>\r\n' >"$src/Windows/System32/Recovery/ReAgent.xml"
export SOURCE_DATE_EPOCH=0
for c in none xpress lzx; do
    chunk=(--chunk-size=32768)
    [ "$c" = none ] && chunk=()
    quiet wimlib-imagex capture "$src" "$tmp/$c.wim" winre --compress="$c" "${chunk[@]}"
    quiet wimlib-imagex capture "$src" "$tmp/$c-check.wim" winre --compress="$c" "${chunk[@]}" --check
    seed wim_open "$tmp/$c.wim" "$c.wim"
    seed wim_open "$tmp/$c-check.wim" "$c-check.wim"
done
cp "$tmp/xpress.wim" "$tmp/two.wim"
quiet wimlib-imagex append "$src/dir" "$tmp/two.wim" second --boot
seed wim_open "$tmp/two.wim" two.wim
quiet wimlib-imagex capture "$src" "$tmp/xpress-4k.wim" winre --compress=xpress --chunk-size=4096
seed wim_open "$tmp/xpress-4k.wim" xpress-4k.wim
quiet wimlib-imagex capture "$src" "$tmp/lzx-64k.wim" winre --compress=lzx --chunk-size=65536
seed wim_open "$tmp/lzx-64k.wim" lzx-64k.wim
quiet wimlib-imagex capture "$src" "$tmp/lzms.wim" winre --compress=lzms --chunk-size=32768
seed wim_open "$tmp/lzms.wim" lzms.wim

# XML, resources and single chunks cut out of those WIMs (WIM header and blob table layout:
# wimlib include/wimlib/header.h, blob_table.c).
python3 - "$tmp" "$out" <<'PY'
import os, struct, sys
tmp, out = sys.argv[1], sys.argv[2]
def put(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)
def reshdr(b):
    return int.from_bytes(b[0:7], "little"), b[7], *struct.unpack("<QQ", b[8:24])
for name in ["none", "xpress", "lzx", "two", "xpress-4k", "lzx-64k", "lzms"]:
    wim = open(os.path.join(tmp, name + ".wim"), "rb").read()
    flags, chunk = struct.unpack("<II", wim[0x10:0x18])
    images = struct.unpack("<I", wim[0x2C:0x30])[0]
    comp = 1 if flags & 0x20000 else 2 if flags & 0x40000 else 3 if flags & 0x80000 else 0
    size, _, off, orig = reshdr(wim[0x48:0x60])
    put("wim_xml", name + ".xml", bytes([images]) + wim[off:off + size])
    bsize, _, boff, _ = reshdr(wim[0x30:0x48])
    table = wim[boff:boff + bsize]
    for i in range(0, len(table) - 49, 50):
        e = table[i:i + 24]
        size, rflags, off, orig = reshdr(e)
        if i < 4 * 50:
            put("wim_resource", "%s-%d" % (name, i // 50), e + bytes([comp, max(chunk.bit_length() - 1, 15)]) + wim)
        if rflags & 0x02 and not rflags & 0x04:
            put("wim_metadata", "%s-%d" % (name, i // 50), wim[off:off + size])
        if not rflags & 0x04 or comp == 0:
            continue
        nchunks = (orig + chunk - 1) // chunk
        table_bytes = 4 * (nchunks - 1)
        first_end = struct.unpack("<I", wim[off:off + 4])[0] if nchunks > 1 else size - table_bytes
        first = wim[off + table_bytes:off + table_bytes + first_end]
        out_len = min(chunk, orig)
        if len(first) == out_len:
            continue  # stored raw, not compressed
        lo = 12 if comp == 1 else 15
        v = out_len - 1
        head = bytes([chunk.bit_length() - 1 - lo, v & 255, (v >> 8) & 255, v >> 16])
        put({1: "codec_xpress", 2: "codec_lzx", 3: "codec_lzms"}[comp], "%s-%d" % (name, i // 50),
            head + first)
        if comp in (1, 2):
            put("codec_diff", "%s-%d" % (name, i // 50), bytes([comp]) + head + first)
PY

# --- Disks: 1 MiB raw with a GPT and some data, then every container of it.
raw="$tmp/disk.raw"
truncate -s 1M "$raw"
quiet sgdisk -U 11111111-2222-3333-4444-555555555555 -n 1:34:1023 -t 1:0700 -c 1:data -n 2:1024:2014 -t 2:2700 -c 2:Recovery "$raw"
printf 'data at 64 KiB' | dd of="$raw" bs=1 seek=65536 conv=notrunc status=none
head -c 70000 "$src/big.bin" | dd of="$raw" bs=1 seek=300000 conv=notrunc status=none
quiet qemu-img convert -f raw -O vpc -o subformat=dynamic "$raw" "$tmp/d.vhd"
seed container_vhd "$tmp/d.vhd" dynamic.vhd
quiet qemu-img convert -f raw -O qcow2 -o cluster_size=512 "$raw" "$tmp/d.qcow2"
seed container_qcow2 "$tmp/d.qcow2" v3-512.qcow2
quiet qemu-img convert -f raw -O qcow2 -o compat=0.10,cluster_size=4096 "$raw" "$tmp/d2.qcow2"
seed container_qcow2 "$tmp/d2.qcow2" v2-4k.qcow2
quiet qemu-img convert -c -f raw -O qcow2 -o cluster_size=4096 "$raw" "$tmp/c.qcow2"
seed container_qcow2 "$tmp/c.qcow2" compressed.qcow2
quiet qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=1M "$raw" "$tmp/d.vhdx"
# qemu-img puts the data block at 8 MiB: move it next to the BAT (MS-VHDX 2.5: payload block
# entries hold the offset in MiB from bit 20) so the seed is 5 MiB, not 9.
python3 - "$tmp/d.vhdx" "$tmp/small.vhdx" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
bat = 2 << 20  # the BAT region (qemu-img: 2 MiB; metadata at 3 MiB)
out, next_mib = d[:4 << 20], 4
for i in range(0, 1 << 20, 8):
    e = struct.unpack_from("<Q", d, bat + i)[0]
    if e & 7 == 6:
        old = (e >> 20) << 20
        out[bat + i:bat + i + 8] = struct.pack("<Q", (next_mib << 20) | (e & 0xFFFFF))
        out += d[old:old + (1 << 20)]
        next_mib += 1
open(sys.argv[2], "wb").write(out)
PY
seed container_vhdx "$tmp/small.vhdx" dynamic.vhdx
quiet qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$raw" "$tmp/s.vmdk"
seed container_vmdk "$tmp/s.vmdk" sparse.vmdk
quiet qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$raw" "$tmp/so.vmdk"
seed container_vmdk "$tmp/so.vmdk" stream.vmdk
# A text descriptor and its one extent, joined by the separator the target splits on.
mkdir -p "$tmp/flat"
quiet qemu-img convert -f raw -O vmdk -o subformat=monolithicFlat "$raw" "$tmp/flat/f.vmdk"
{ sed 's/"f-flat.vmdk"/"extent.vmdk"/' "$tmp/flat/f.vmdk"; printf '\n--extent--\n'; head -c 65536 "$raw"; } >"$tmp/flat.seed"
seed container_vmdk "$tmp/flat.seed" descriptor-flat
mkdir -p "$tmp/split"
quiet qemu-img convert -f raw -O vmdk -o subformat=twoGbMaxExtentSparse "$raw" "$tmp/split/t.vmdk"
{ sed 's/"t-s001.vmdk"/"extent.vmdk"/' "$tmp/split/t.vmdk"; printf '\n--extent--\n'; cat "$tmp/split/t-s001.vmdk"; } >"$tmp/split.seed"
seed container_vmdk "$tmp/split.seed" descriptor-sparse
head -c 131072 "$raw" >"$tmp/small.raw"
for c in fast none; do
    quiet ewfacquire -u -q -t "$tmp/e-$c" -C case -D winre-seed -E 1 -e winre -N none -c "$c" -b 16 "$tmp/small.raw"
    seed container_ewf "$tmp/e-$c.E01" "$c.E01"
done

# --- Partition tables: a small GPT (512- and 4096-byte sectors) and an MBR with logical drives.
truncate -s 128K "$tmp/gpt.img"
quiet sgdisk -n 1:40:100 -t 1:EF00 -n 2:101:200 -t 2:2700 -A 2:set:0 "$tmp/gpt.img"
seed gpt "$tmp/gpt.img" gpt-512.img
seed mbr "$tmp/gpt.img" gpt-512.img
python3 "$here/../fixtures/gpt4k.py" --help >/dev/null 2>&1 || true
truncate -s 160K "$tmp/mbr.img"
printf 'label: dos\nunit: sectors\nstart=1, size=50, type=7, bootable\nstart=51, size=30, type=27\nstart=81, size=230, type=5\nstart=82, size=20, type=7\nstart=110, size=20, type=b\n' |
    quiet sfdisk --no-reread --no-tell-kernel "$tmp/mbr.img"
seed mbr "$tmp/mbr.img" mbr-logical.img
seed gpt "$tmp/mbr.img" mbr-logical.img

# --- NTFS: the smallest volume mkntfs makes, with the tree applied by wimlib (NTFS-3G mode).
truncate -s 2M "$tmp/ntfs.img"
quiet mkntfs -F -Q -q -T -c 512 -s 512 -L winre-seed "$tmp/ntfs.img"
quiet wimlib-imagex apply "$tmp/none.wim" 1 "$tmp/ntfs.img"
seed ntfs "$tmp/ntfs.img" small-512.img

# --- ReAgent.xml as Windows writes it (UTF-8 BOM, CRLF), and as UTF-16.
mkdir -p "$out/reagent"
printf '\xef\xbb\xbf<?xml version='"'"'1.0'"'"' encoding='"'"'utf-8'"'"'?>\r\n<WindowsRE version="2.0">\r\n  <WinreBCD id="{5d2b4a2c-0000-11ef-9a3b-0800275a1c01}"/>\r\n  <WinreLocation path="\\Recovery\\WindowsRE" id="0" offset="1048576" guid="{11111111-2222-3333-4444-555555555555}"/>\r\n  <ImageLocation path="" id="0" offset="0" guid="{00000000-0000-0000-0000-000000000000}"/>\r\n  <InstallState state="1"/>\r\n  <WinREStaged state="0"/>\r\n</WindowsRE>\r\n' >"$out/reagent/utf8.xml"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read()[3:].decode(); open(sys.argv[2],"wb").write(b"\xff\xfe"+d.encode("utf-16-le"))' "$out/reagent/utf8.xml" "$out/reagent/utf16.xml"

# --- Hives: SOFTWARE and BCD as the WinRE fixtures make them (hivex).
/usr/bin/python3 "$here/../fixtures/winre-hives.py" software "$tmp/software.hive" 10.0.19041.5728
seed software "$tmp/software.hive" software.hive
seed hive "$tmp/software.hive" software.hive
/usr/bin/python3 "$here/../fixtures/winre-hives.py" bcd "$tmp/bcd.hive" efi '{5d2b4a2c-0000-11ef-9a3b-0800275a1c01}' '\Recovery\WindowsRE\Winre.wim' 11111111-2222-3333-4444-555555555555 11111111-2222-3333-4444-555555555556
seed bcd "$tmp/bcd.hive" bcd.hive
seed hive "$tmp/bcd.hive" bcd.hive
/usr/bin/python3 "$here/../fixtures/winre-hives.py" bcd "$tmp/bcd-mbr.hive" bios '{5d2b4a2c-0000-11ef-9a3b-0800275a1c01}' '\Recovery\WindowsRE\Winre.wim' 1048576 0x12345678
seed bcd "$tmp/bcd-mbr.hive" bcd-mbr.hive
# --- PE images with version resources, as the PE tests make them (binutils windres / ld).
pe="$(bash "$here/../fixtures/make-pe.sh")"
for f in winpeshl.exe winload.efi x86.exe noversion.exe; do seed pe_version "$pe/$f" "$f"; done
seed wim_open "$pe/pe.wim" pe.wim
du -sh "$out"/*
