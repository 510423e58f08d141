//! A small EVTX writer for test fixtures: no Linux tool writes Windows event logs.
//!
//! Layout as documented by Joachim Metz, "Windows XML Event Log (EVTX) format" (libevtx) and
//! Microsoft MS-EVEN6 (BinXML): a 4096-byte file header ("ElfFile", CRC32 of its first 120
//! bytes), 64 KiB chunks ("ElfChnk", string and template tables, CRC32 of the records and of the
//! header), and records ("**\0\0", size, id, FILETIME, BinXML, size again). Each record is a
//! template instance: the first record of a kind in a chunk defines its template inline, later
//! ones refer to it, as Windows writes them. Names are stored once per chunk and linked from the
//! chunk's string table. Every fixture is read back with python-evtx before a test uses it.

#![allow(
    dead_code,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashMap;

/// A substitution value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// WString (type 0x01).
    Str(String),
    /// HexInt32 (type 0x14), rendered 0x%08x.
    Hex32(u32),
    /// UInt32 (type 0x08).
    U32(u32),
}

/// One event to write.
#[derive(Debug, Clone)]
pub struct Event {
    /// Provider name, e.g. "Microsoft-Windows-WindowsUpdateClient".
    pub provider: String,
    /// Provider GUID, "{...}".
    pub guid: String,
    /// Event id.
    pub event_id: u16,
    /// EventRecordID.
    pub record_id: u64,
    /// FILETIME of the record.
    pub filetime: u64,
    /// Channel, e.g. "System".
    pub channel: String,
    /// EventData fields in order.
    pub data: Vec<(String, Value)>,
}

/// FILETIME of a UTC time given as seconds since the Unix epoch.
pub fn filetime(unix_seconds: u64) -> u64 {
    (unix_seconds + 11_644_473_600) * 10_000_000
}

const CHUNK: usize = 65536;
const CHUNK_HEADER: usize = 512;
const FILE_HEADER: usize = 4096;
/// A record never takes more than this (the writer starts a new chunk below it).
const MAX_RECORD: usize = 8192;

fn crc32(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn name_hash(name: &str) -> u16 {
    let mut hash: u32 = 0;
    for unit in name.encode_utf16() {
        hash = hash.wrapping_mul(65599).wrapping_add(u32::from(unit));
    }
    hash as u16
}

fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}
fn patch_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Content of an element or attribute in a template.
enum Content {
    Text(String),
    Sub(u16, u8),
}

struct Element {
    name: &'static str,
    attrs: Vec<(&'static str, Content)>,
    children: Vec<Child>,
}

enum Child {
    Element(Element),
    Content(Content),
}

fn el(name: &'static str, attrs: Vec<(&'static str, Content)>, children: Vec<Child>) -> Child {
    Child::Element(Element {
        name,
        attrs,
        children,
    })
}

fn value_type(v: &Value) -> u8 {
    match v {
        Value::Str(_) => 0x01,
        Value::Hex32(_) => 0x14,
        Value::U32(_) => 0x08,
    }
}

/// One chunk being filled.
struct Chunk {
    buf: Vec<u8>,
    names: HashMap<String, u32>,
    templates: HashMap<String, (u32, u32)>,
    string_table: [u32; 64],
    template_table: [u32; 32],
    first_id: u64,
    last_id: u64,
    last_record_offset: u32,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            buf: vec![0; CHUNK_HEADER],
            names: HashMap::new(),
            templates: HashMap::new(),
            string_table: [0; 64],
            template_table: [0; 32],
            first_id: 0,
            last_id: 0,
            last_record_offset: 0,
        }
    }

    /// A name reference: the offset, and the name inline the first time.
    fn name_ref(&mut self, name: &str) {
        if let Some(&at) = self.names.get(name) {
            put_u32(&mut self.buf, at);
            return;
        }
        let at = (self.buf.len() + 4) as u32;
        put_u32(&mut self.buf, at);
        put_u32(&mut self.buf, 0); // next string in the bucket
        let hash = name_hash(name);
        put_u16(&mut self.buf, hash);
        put_u16(&mut self.buf, name.encode_utf16().count() as u16);
        self.buf.extend_from_slice(&utf16(name));
        put_u16(&mut self.buf, 0);
        // Link it from the string table (bucket = hash % 64), at the end of the bucket's chain.
        let bucket = usize::from(hash) % 64;
        if self.string_table[bucket] == 0 {
            self.string_table[bucket] = at;
        } else {
            let mut link = self.string_table[bucket] as usize;
            loop {
                let next = u32::from_le_bytes(self.buf[link..link + 4].try_into().unwrap());
                if next == 0 {
                    break;
                }
                link = next as usize;
            }
            patch_u32(&mut self.buf, link, at);
        }
        self.names.insert(name.to_string(), at);
    }

    fn content(&mut self, c: &Content) {
        match c {
            Content::Text(t) => {
                self.buf.push(0x05);
                self.buf.push(0x01);
                put_u16(&mut self.buf, t.encode_utf16().count() as u16);
                self.buf.extend_from_slice(&utf16(t));
            }
            Content::Sub(index, ty) => {
                self.buf.push(0x0d);
                put_u16(&mut self.buf, *index);
                self.buf.push(*ty);
            }
        }
    }

    fn element(&mut self, e: &Element) {
        self.buf.push(if e.attrs.is_empty() { 0x01 } else { 0x41 });
        put_u16(&mut self.buf, 0xffff); // no dependency
        let size_at = self.buf.len();
        put_u32(&mut self.buf, 0);
        self.name_ref(e.name);
        if !e.attrs.is_empty() {
            let list_at = self.buf.len();
            put_u32(&mut self.buf, 0);
            for (i, (name, value)) in e.attrs.iter().enumerate() {
                let more = i + 1 < e.attrs.len();
                self.buf.push(if more { 0x46 } else { 0x06 });
                self.name_ref(name);
                self.content(value);
            }
            let len = (self.buf.len() - list_at - 4) as u32;
            patch_u32(&mut self.buf, list_at, len);
        }
        if e.children.is_empty() {
            self.buf.push(0x03);
        } else {
            self.buf.push(0x02);
            for child in &e.children {
                match child {
                    Child::Element(c) => self.element(c),
                    Child::Content(c) => self.content(c),
                }
            }
            self.buf.push(0x04);
        }
        let len = (self.buf.len() - size_at - 4) as u32;
        patch_u32(&mut self.buf, size_at, len);
    }

    /// The template of `event`'s kind, as an element tree with numbered substitutions:
    /// 0 EventID, 1 Level, 2 TimeCreated, 3 EventRecordID, 4 Computer, 5.. the EventData fields.
    fn template_tree(event: &Event) -> Element {
        let text = |s: &str| Child::Content(Content::Text(s.to_string()));
        let sub = |i: u16, t: u8| Child::Content(Content::Sub(i, t));
        let system = el(
            "System",
            vec![],
            vec![
                el(
                    "Provider",
                    vec![
                        ("Name", Content::Text(event.provider.clone())),
                        ("Guid", Content::Text(event.guid.clone())),
                    ],
                    vec![],
                ),
                el("EventID", vec![], vec![sub(0, 0x06)]),
                el("Version", vec![], vec![text("0")]),
                el("Level", vec![], vec![sub(1, 0x04)]),
                el(
                    "TimeCreated",
                    vec![("SystemTime", Content::Sub(2, 0x11))],
                    vec![],
                ),
                el("EventRecordID", vec![], vec![sub(3, 0x0a)]),
                el("Channel", vec![], vec![text(&event.channel)]),
                el("Computer", vec![], vec![sub(4, 0x01)]),
            ],
        );
        let data = event
            .data
            .iter()
            .enumerate()
            .map(|(i, (name, v))| {
                // Names must live as long as the tree; these leak a few bytes per template.
                let name: &'static str = Box::leak(name.clone().into_boxed_str());
                el(
                    "Data",
                    vec![("Name", Content::Text(name.to_string()))],
                    vec![sub(5 + i as u16, value_type(v))],
                )
            })
            .collect();
        Element {
            name: "Event",
            attrs: vec![(
                "xmlns",
                Content::Text("http://schemas.microsoft.com/win/2004/08/events/event".into()),
            )],
            children: vec![system, el("EventData", vec![], data)],
        }
    }

    fn template_key(event: &Event) -> String {
        let mut key = format!("{}|{}|{}", event.provider, event.event_id, event.channel);
        for (n, v) in &event.data {
            key.push_str(&format!("|{n}:{}", value_type(v)));
        }
        key
    }

    fn record(&mut self, event: &Event) {
        let start = self.buf.len();
        self.buf.extend_from_slice(b"**\0\0");
        put_u32(&mut self.buf, 0);
        self.buf.extend_from_slice(&event.record_id.to_le_bytes());
        self.buf.extend_from_slice(&event.filetime.to_le_bytes());
        self.buf.extend_from_slice(&[0x0f, 1, 1, 0]);
        // Template instance.
        let key = Self::template_key(event);
        self.buf.push(0x0c);
        self.buf.push(0x01);
        match self.templates.get(&key).copied() {
            Some((id, at)) => {
                put_u32(&mut self.buf, id);
                put_u32(&mut self.buf, at);
            }
            None => {
                let id = 0x1000_0000 + self.templates.len() as u32;
                let at = (self.buf.len() + 8) as u32;
                put_u32(&mut self.buf, id);
                put_u32(&mut self.buf, at);
                put_u32(&mut self.buf, 0); // next template in the bucket
                                           // GUID: its first four bytes are the template id, as python-evtx expects.
                self.buf.extend_from_slice(&id.to_le_bytes());
                self.buf.extend_from_slice(&[0x5a; 12]);
                let size_at = self.buf.len();
                put_u32(&mut self.buf, 0);
                self.buf.extend_from_slice(&[0x0f, 1, 1, 0]);
                let tree = Self::template_tree(event);
                self.element(&tree);
                self.buf.push(0x00);
                let len = (self.buf.len() - size_at - 4) as u32;
                patch_u32(&mut self.buf, size_at, len);
                let bucket = self.templates.len() % 32;
                assert_eq!(
                    self.template_table[bucket], 0,
                    "more than 32 templates in a chunk"
                );
                self.template_table[bucket] = at;
                self.templates.insert(key, (id, at));
            }
        }
        // Substitution values.
        let computer = Value::Str("WIN-HISTORY".into());
        let mut values: Vec<(u8, Vec<u8>)> = vec![
            (0x06, event.event_id.to_le_bytes().to_vec()),
            (0x04, vec![4]),
            (0x11, event.filetime.to_le_bytes().to_vec()),
            (0x0a, event.record_id.to_le_bytes().to_vec()),
        ];
        for v in std::iter::once(&computer).chain(event.data.iter().map(|(_, v)| v)) {
            values.push((
                value_type(v),
                match v {
                    Value::Str(s) => utf16(s),
                    Value::Hex32(x) | Value::U32(x) => x.to_le_bytes().to_vec(),
                },
            ));
        }
        put_u32(&mut self.buf, values.len() as u32);
        for (ty, bytes) in &values {
            put_u16(&mut self.buf, bytes.len() as u16);
            self.buf.push(*ty);
            self.buf.push(0);
        }
        for (_, bytes) in &values {
            self.buf.extend_from_slice(bytes);
        }
        let size = (self.buf.len() - start + 4) as u32;
        put_u32(&mut self.buf, size);
        patch_u32(&mut self.buf, start + 4, size);
        assert!(
            (size as usize) < MAX_RECORD,
            "record too large for the writer"
        );
        if self.first_id == 0 {
            self.first_id = event.record_id;
        }
        self.last_id = event.record_id;
        self.last_record_offset = start as u32;
    }

    fn finish(mut self) -> Vec<u8> {
        let first_number = self.first_id;
        let free = self.buf.len() as u32;
        let records_crc = crc32(&[&self.buf[CHUNK_HEADER..]]);
        self.buf.resize(CHUNK, 0);
        let h = &mut self.buf;
        h[0..8].copy_from_slice(b"ElfChnk\0");
        let count = self.last_id - self.first_id + 1;
        h[8..16].copy_from_slice(&first_number.to_le_bytes());
        h[16..24].copy_from_slice(&(first_number + count - 1).to_le_bytes());
        h[24..32].copy_from_slice(&self.first_id.to_le_bytes());
        h[32..40].copy_from_slice(&self.last_id.to_le_bytes());
        h[40..44].copy_from_slice(&128u32.to_le_bytes());
        h[44..48].copy_from_slice(&self.last_record_offset.to_le_bytes());
        h[48..52].copy_from_slice(&free.to_le_bytes());
        h[52..56].copy_from_slice(&records_crc.to_le_bytes());
        for (i, off) in self.string_table.iter().enumerate() {
            h[128 + i * 4..132 + i * 4].copy_from_slice(&off.to_le_bytes());
        }
        for (i, off) in self.template_table.iter().enumerate() {
            h[384 + i * 4..388 + i * 4].copy_from_slice(&off.to_le_bytes());
        }
        let header_crc = crc32(&[&h[..120], &h[128..512]]);
        h[124..128].copy_from_slice(&header_crc.to_le_bytes());
        self.buf
    }
}

/// The bytes of an .evtx file holding `events` (record ids must rise by one).
pub fn write_log(events: &[Event]) -> Vec<u8> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut chunk = Chunk::new();
    for event in events {
        if chunk.buf.len() + MAX_RECORD > CHUNK || chunk.templates.len() >= 32 {
            chunks.push(std::mem::replace(&mut chunk, Chunk::new()).finish());
        }
        chunk.record(event);
    }
    if chunk.last_id != 0 {
        chunks.push(chunk.finish());
    }
    let mut file = vec![0u8; FILE_HEADER];
    file[0..8].copy_from_slice(b"ElfFile\0");
    file[8..16].copy_from_slice(&0u64.to_le_bytes());
    file[16..24].copy_from_slice(&(chunks.len() as u64).saturating_sub(1).to_le_bytes());
    let next = events.last().map_or(1, |e| e.record_id + 1);
    file[24..32].copy_from_slice(&next.to_le_bytes());
    file[32..36].copy_from_slice(&128u32.to_le_bytes());
    file[36..38].copy_from_slice(&1u16.to_le_bytes());
    file[38..40].copy_from_slice(&3u16.to_le_bytes());
    file[40..42].copy_from_slice(&4096u16.to_le_bytes());
    file[42..44].copy_from_slice(&(chunks.len() as u16).to_le_bytes());
    let crc = crc32(&[&file[..120]]);
    file[124..128].copy_from_slice(&crc.to_le_bytes());
    for c in chunks {
        file.extend_from_slice(&c);
    }
    file
}

/// Provider GUIDs, as Windows registers them.
pub const WU_GUID: &str = "{945a8954-c147-4acd-923f-40c45405a658}";
pub const WINRE_AGENT_GUID: &str = "{1f7a6c55-5532-573b-35b7-2107e43a6ef5}";
pub const SERVICING_GUID: &str = "{bd12f3b8-fc40-4a61-a307-b7a013a069c1}";
pub const POWERSHELL_GUID: &str = "{a0c1853b-5c40-4b15-8766-3cf1c58f985a}";
pub const SCM_GUID: &str = "{555908d1-a6d7-4695-8e1e-26931d2012f4}";

/// A Windows Update client event (19 installed, 20 failed with `error`, 43 started, 44 download).
pub fn wu(record_id: u64, unix: u64, event_id: u16, title: &str, error: Option<u32>) -> Event {
    let mut data = Vec::new();
    if let Some(code) = error {
        data.push(("errorCode".to_string(), Value::Hex32(code)));
    }
    data.push(("updateTitle".to_string(), Value::Str(title.into())));
    data.push((
        "updateGuid".to_string(),
        Value::Str("{7a7f0ad3-59b6-4ec9-9d5b-c8a16c6dbd2c}".into()),
    ));
    data.push(("updateRevisionNumber".to_string(), Value::U32(1)));
    data.push((
        "serviceGuid".to_string(),
        Value::Str("{7971f918-a847-4430-9279-4a52d1efe18d}".into()),
    ));
    Event {
        provider: "Microsoft-Windows-WindowsUpdateClient".into(),
        guid: WU_GUID.into(),
        event_id,
        record_id,
        filetime: filetime(unix),
        channel: "System".into(),
        data,
    }
}

/// A WinREAgent event: 4501 with the new version, 4502 with phase and code, 4504.
pub fn agent(record_id: u64, unix: u64, event_id: u16, fields: &[(&str, Value)]) -> Event {
    Event {
        provider: "Microsoft-Windows-WinREAgent".into(),
        guid: WINRE_AGENT_GUID.into(),
        event_id,
        record_id,
        filetime: filetime(unix),
        channel: "System".into(),
        data: fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
    }
}

/// A Service Control Manager 7036 event ("The X service entered the running state"): filler.
pub fn scm(record_id: u64, unix: u64, service: &str) -> Event {
    Event {
        provider: "Service Control Manager".into(),
        guid: SCM_GUID.into(),
        event_id: 7036,
        record_id,
        filetime: filetime(unix),
        channel: "System".into(),
        data: vec![
            ("param1".into(), Value::Str(service.into())),
            ("param2".into(), Value::Str("running".into())),
        ],
    }
}

/// A Setup.evtx Servicing event 4: a reboot is necessary before `package` can change state.
pub fn reboot_needed(record_id: u64, unix: u64, package: &str) -> Event {
    Event {
        provider: "Microsoft-Windows-Servicing".into(),
        guid: SERVICING_GUID.into(),
        event_id: 4,
        record_id,
        filetime: filetime(unix),
        channel: "Setup".into(),
        data: vec![
            ("PackageIdentifier".into(), Value::Str(package.into())),
            ("InitialPackageState".into(), Value::Str("Staged".into())),
            (
                "IntendedPackageState".into(),
                Value::Str("Installed".into()),
            ),
            ("ErrorCode".into(), Value::Hex32(0)),
            ("Client".into(), Value::Str("WindowsUpdateAgent".into())),
        ],
    }
}

/// A PowerShell Operational 4104 script block event.
pub fn script_block(record_id: u64, unix: u64, text: &str) -> Event {
    Event {
        provider: "Microsoft-Windows-PowerShell".into(),
        guid: POWERSHELL_GUID.into(),
        event_id: 4104,
        record_id,
        filetime: filetime(unix),
        channel: "Microsoft-Windows-PowerShell/Operational".into(),
        data: vec![
            ("MessageNumber".into(), Value::U32(1)),
            ("MessageTotal".into(), Value::U32(1)),
            ("ScriptBlockText".into(), Value::Str(text.into())),
            (
                "ScriptBlockId".into(),
                Value::Str("8e2f4a51-0b6c-4d7e-9f1a-2b3c4d5e6f70".into()),
            ),
            ("Path".into(), Value::Str(String::new())),
        ],
    }
}

/// python-evtx's reading of an .evtx file: per record, (record id, provider, event id, the
/// EventData fields by name). Panics when python-evtx refuses the file.
/// One record as python-evtx reads it: record id, provider, event id, EventData (name, text).
pub type ReadRecord = (u64, String, u32, Vec<(String, String)>);

/// With `strict`, the file header and every chunk must pass python-evtx's checksum checks (for
/// logs this writer made; real samples can have stale chunk checksums).
pub fn python_evtx(path: &std::path::Path, strict: bool) -> Vec<ReadRecord> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = if root.join("fixtures").is_dir() {
        root.to_path_buf()
    } else {
        root.join("../..")
    };
    let pip = root.join("fixtures/cache/pip");
    let script = r#"
import json, sys, xml.etree.ElementTree as ET
import Evtx.Evtx as evtx
ns = "{http://schemas.microsoft.com/win/2004/08/events/event}"
out = []
with evtx.Evtx(sys.argv[1]) as log:
    header = log.get_file_header()
    strict = sys.argv[2] == "1"
    assert header.verify() or not strict, "file header checksum or magic"
    for chunk in header.chunks():
        assert chunk.verify() or not strict, "chunk checksums"
        for record in chunk.records():
            root = ET.fromstring(record.xml())
            system = root.find(ns + "System")
            provider = system.find(ns + "Provider").get("Name")
            event_id = int(system.find(ns + "EventID").text)
            rid = record.record_num()
            if strict:
                assert int(system.find(ns + "EventRecordID").text) == rid, rid
            section = root.find(ns + "EventData")
            data = [(d.get("Name"), d.text or "") for d in section] if section is not None else []
            out.append([rid, provider, event_id, data])
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .arg(if strict { "1" } else { "0" })
        .env("PYTHONPATH", &pip)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python-evtx refused {} (install it with fixtures/install-tools.sh): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<ReadRecord> = serde_json::from_slice(&out.stdout).expect("python-evtx JSON");
    parsed
}
