//! Key nodes ("nk") and the subkey lists that link them ("li", "lf", "lh", "ri").
//!
//! Sources: msuhanov/regf specification, sections "Key node", "Index leaf", "Fast leaf",
//! "Hash leaf" and "Index root" (an index root points only to leaves, never to another root).

use std::collections::HashSet;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::cell::{u16_at, u32_at, NO_CELL};
use crate::error::{Error, Result};
use crate::name;
use crate::value::{Value, ValueRecord};
use crate::{Hive, ReadAt};

/// Most subkeys read from one key (the largest keys of a SOFTWARE hive hold tens of thousands).
pub const MAX_SUBKEYS_PER_KEY: u32 = 1 << 20;
/// Most values read from one key.
pub const MAX_VALUES_PER_KEY: u32 = 1 << 20;

/// KEY_COMP_NAME: the name is Latin-1, not UTF-16LE.
const KEY_COMP_NAME: u16 = 0x0020;

/// The fixed part of a key node as stored (76 bytes, then the name).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct KeyNodeDisk {
    /// +0x00 "nk"
    pub signature: [u8; 2],
    /// +0x02 KEY_* flags
    pub flags: U16,
    /// +0x04 FILETIME of the last write
    pub last_written: U64,
    /// +0x0C access bits (Windows 8+)
    pub access_bits: U32,
    /// +0x10 parent key node
    pub parent: U32,
    /// +0x14 number of (stable) subkeys
    pub subkey_count: U32,
    /// +0x18 number of volatile subkeys (meaningless on disk)
    pub volatile_subkey_count: U32,
    /// +0x1C subkeys list (leaf or index root)
    pub subkey_list: U32,
    /// +0x20 volatile subkeys list (meaningless on disk)
    pub volatile_subkey_list: U32,
    /// +0x24 number of values
    pub value_count: U32,
    /// +0x28 values list
    pub value_list: U32,
    /// +0x2C key security cell
    pub security: U32,
    /// +0x30 class name cell
    pub class_name: U32,
    /// +0x34 largest subkey name length (low 16 bits) and flag bit fields
    pub max_subkey_name: U32,
    /// +0x38 largest subkey class name length
    pub max_subkey_class: U32,
    /// +0x3C largest value name length
    pub max_value_name: U32,
    /// +0x40 largest value data size
    pub max_value_data: U32,
    /// +0x44 cached index (unused since XP)
    pub work_var: U32,
    /// +0x48 name length in bytes
    pub name_len: U16,
    /// +0x4A class name length in bytes
    pub class_name_len: U16,
}

/// A key node, checked.
#[derive(Debug, Clone)]
pub struct KeyNode {
    /// The node's cell, relative to the hive bins data.
    pub cell_offset: u32,
    /// KEY_* flags.
    pub flags: u16,
    /// FILETIME of the last write to the key.
    pub last_written_filetime: u64,
    /// Number of subkeys, as recorded.
    pub subkey_count: u32,
    /// The subkeys list cell, or 0xFFFFFFFF.
    pub subkey_list: u32,
    /// Number of values, as recorded.
    pub value_count: u32,
    /// The values list cell, or 0xFFFFFFFF.
    pub value_list: u32,
    /// The key's name.
    pub name: String,
}

impl KeyNode {
    /// Checks the key node in `cell` (the cell's data, read from `cell_offset`).
    pub fn parse(cell: &[u8], cell_offset: u32) -> Result<Self> {
        let file_offset = crate::file_offset(cell_offset);
        let corrupt = |detail: String| Error::corrupt("key node", file_offset, detail);
        let (disk, rest) = KeyNodeDisk::read_from_prefix(cell).map_err(|_| {
            corrupt(format!(
                "cell holds {} bytes, a key node needs 76",
                cell.len()
            ))
        })?;
        if &disk.signature != b"nk" {
            return Err(corrupt(format!(
                "signature is {:02x?}, expected \"nk\"",
                disk.signature
            )));
        }
        let name_len = usize::from(disk.name_len.get());
        let name_bytes = rest.get(..name_len).ok_or_else(|| {
            corrupt(format!(
                "name of {name_len} bytes runs past the cell ({} bytes after the header)",
                rest.len()
            ))
        })?;
        let flags = disk.flags.get();
        let subkey_count = disk.subkey_count.get();
        if subkey_count > MAX_SUBKEYS_PER_KEY {
            return Err(corrupt(format!(
                "{subkey_count} subkeys exceed the cap of {MAX_SUBKEYS_PER_KEY}"
            )));
        }
        let value_count = disk.value_count.get();
        if value_count > MAX_VALUES_PER_KEY {
            return Err(corrupt(format!(
                "{value_count} values exceed the cap of {MAX_VALUES_PER_KEY}"
            )));
        }
        Ok(KeyNode {
            cell_offset,
            flags,
            last_written_filetime: disk.last_written.get(),
            subkey_count,
            subkey_list: disk.subkey_list.get(),
            value_count,
            value_list: disk.value_list.get(),
            name: name::decode(name_bytes, flags & KEY_COMP_NAME != 0),
        })
    }
}

/// A registry key inside a [`Hive`].
pub struct Key<'h, R> {
    hive: &'h Hive<R>,
    node: KeyNode,
}

impl<R> std::fmt::Debug for Key<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("node", &self.node).finish()
    }
}

impl<'h, R: ReadAt> Key<'h, R> {
    /// Reads the key node at `cell_offset`.
    pub(crate) fn read(hive: &'h Hive<R>, cell_offset: u32) -> Result<Self> {
        let cell = hive.cells.read(cell_offset, "key node")?;
        Ok(Key {
            hive,
            node: KeyNode::parse(&cell, cell_offset)?,
        })
    }

    /// The key's name as stored (the root key's name is whatever the writer chose).
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// The checked key node.
    pub fn node(&self) -> &KeyNode {
        &self.node
    }

    /// The FILETIME of the key's last write.
    pub fn last_written_filetime(&self) -> u64 {
        self.node.last_written_filetime
    }

    /// The cells of this key's subkeys, in stored (sorted) order. Refuses lists whose count
    /// disagrees with the key node, nested index roots, leaves listed twice and self-references.
    pub fn subkey_offsets(&self) -> Result<Vec<u32>> {
        let count = self.node.subkey_count;
        if count == 0 {
            return Ok(Vec::new());
        }
        let list = self.node.subkey_list;
        let mut offsets = Vec::with_capacity(count.min(4096) as usize);
        let cell = self.hive.cells.read(list, "subkeys list")?;
        match cell.get(..2) {
            Some(b"ri") => {
                let leaves = read_index_root(&cell, list)?;
                let mut seen = HashSet::new();
                for leaf in leaves {
                    if !seen.insert(leaf) {
                        return Err(Error::corrupt(
                            "index root",
                            crate::file_offset(list),
                            format!("leaf 0x{leaf:x} is listed twice (a cycle or a duplicate)"),
                        ));
                    }
                    let leaf_cell = self.hive.cells.read(leaf, "subkeys leaf")?;
                    read_leaf(&leaf_cell, leaf, count, &mut offsets)?;
                }
            }
            _ => read_leaf(&cell, list, count, &mut offsets)?,
        }
        if offsets.len() != count as usize {
            return Err(Error::corrupt(
                "key node",
                crate::file_offset(self.node.cell_offset),
                format!(
                    "records {count} subkeys, its subkeys lists hold {}",
                    offsets.len()
                ),
            ));
        }
        if let Some(_self_ref) = offsets.iter().find(|&&o| o == self.node.cell_offset) {
            return Err(Error::corrupt(
                "subkeys list",
                crate::file_offset(list),
                "the key lists itself as its own subkey (a cycle)",
            ));
        }
        Ok(offsets)
    }

    /// The key's subkeys, each read when the iterator reaches it.
    pub fn subkeys(&self) -> Result<Subkeys<'h, R>> {
        Ok(Subkeys {
            hive: self.hive,
            offsets: self.subkey_offsets()?.into_iter(),
        })
    }

    /// The subkey named `name` (compared without case), if there is one.
    pub fn subkey(&self, name: &str) -> Result<Option<Key<'h, R>>> {
        for key in self.subkeys()? {
            let key = key?;
            if name::eq_ignore_case(key.name(), name) {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// Follows a backslash-separated path of subkeys (`Microsoft\Windows NT\CurrentVersion`);
    /// empty components are skipped, so a leading backslash is harmless.
    pub fn path(&self, path: &str) -> Result<Option<Key<'h, R>>> {
        let mut key = Key {
            hive: self.hive,
            node: self.node.clone(),
        };
        for part in path.split('\\').filter(|p| !p.is_empty()) {
            match key.subkey(part)? {
                Some(next) => key = next,
                None => return Ok(None),
            }
        }
        Ok(Some(key))
    }

    /// The key's values, in stored order (not sorted). Value data is read on demand.
    pub fn values(&self) -> Result<Vec<Value<'h, R>>> {
        let count = self.node.value_count;
        if count == 0 {
            return Ok(Vec::new());
        }
        let list = self.node.value_list;
        let cell = self.hive.cells.read(list, "values list")?;
        let needed = (count as usize).saturating_mul(4);
        if cell.len() < needed {
            return Err(Error::corrupt(
                "values list",
                crate::file_offset(list),
                format!(
                    "the key records {count} values ({needed} bytes), the cell holds {}",
                    cell.len()
                ),
            ));
        }
        let mut values = Vec::with_capacity(count.min(4096) as usize);
        for i in 0..count as usize {
            let vk = u32_at(&cell, i.saturating_mul(4)).unwrap_or(NO_CELL);
            let vk_cell = self.hive.cells.read(vk, "key value")?;
            values.push(Value::new(self.hive, ValueRecord::parse(&vk_cell, vk)?));
        }
        Ok(values)
    }

    /// The value named `name` (compared without case; "" is the default value), if any.
    pub fn value(&self, name: &str) -> Result<Option<Value<'h, R>>> {
        Ok(self
            .values()?
            .into_iter()
            .find(|v| name::eq_ignore_case(v.name(), name)))
    }
}

/// Iterator over a key's subkeys; see [`Key::subkeys`].
pub struct Subkeys<'h, R> {
    hive: &'h Hive<R>,
    offsets: std::vec::IntoIter<u32>,
}

impl<'h, R: ReadAt> Iterator for Subkeys<'h, R> {
    type Item = Result<Key<'h, R>>;
    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.offsets.next()?;
        Some(Key::read(self.hive, offset))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.offsets.size_hint()
    }
}

/// The leaves an index root ("ri") lists.
fn read_index_root(cell: &[u8], at: u32) -> Result<Vec<u32>> {
    let corrupt = |detail: String| Error::corrupt("index root", crate::file_offset(at), detail);
    let count = u16_at(cell, 2).ok_or_else(|| corrupt("cell too short for a header".into()))?;
    let needed = 4usize.saturating_add(usize::from(count).saturating_mul(4));
    if cell.len() < needed {
        return Err(corrupt(format!(
            "{count} elements need {needed} bytes, the cell holds {}",
            cell.len()
        )));
    }
    Ok((0..usize::from(count))
        .map(|i| u32_at(cell, 4usize.saturating_add(i.saturating_mul(4))).unwrap_or(NO_CELL))
        .collect())
}

/// Appends the key node offsets of one leaf ("li", "lf" or "lh") to `out`, which must not grow
/// past `limit` (the key's recorded subkey count).
fn read_leaf(cell: &[u8], at: u32, limit: u32, out: &mut Vec<u32>) -> Result<()> {
    let corrupt = |what: &str, detail: String| Error::corrupt(what, crate::file_offset(at), detail);
    let (what, stride) = match cell.get(..2) {
        Some(b"li") => ("index leaf", 4usize),
        Some(b"lf") => ("fast leaf", 8),
        Some(b"lh") => ("hash leaf", 8),
        Some(b"ri") => {
            return Err(corrupt(
                "index root",
                "an index root inside an index root (not allowed; maybe a cycle)".into(),
            ))
        }
        other => {
            return Err(corrupt(
                "subkeys list",
                format!("signature is {other:02x?}, expected li, lf, lh or ri"),
            ))
        }
    };
    let count =
        u16_at(cell, 2).ok_or_else(|| corrupt(what, "cell too short for a header".into()))?;
    let needed = 4usize.saturating_add(usize::from(count).saturating_mul(stride));
    if cell.len() < needed {
        return Err(corrupt(
            what,
            format!(
                "{count} elements need {needed} bytes, the cell holds {}",
                cell.len()
            ),
        ));
    }
    if out.len().saturating_add(usize::from(count)) > limit as usize {
        return Err(corrupt(
            what,
            format!("the lists hold more subkeys than the {limit} the key records"),
        ));
    }
    for i in 0..usize::from(count) {
        let at = 4usize.saturating_add(i.saturating_mul(stride));
        out.push(u32_at(cell, at).unwrap_or(NO_CELL));
    }
    Ok(())
}
