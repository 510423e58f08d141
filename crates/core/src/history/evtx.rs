//! Walks a Windows event log (`.evtx`) in place and keeps the events of the providers asked for.
//!
//! Parsing is done by the `evtx` crate (Omer Ben-Amram). The log is read chunk by chunk through
//! [`winre_readat::Cursor`], never copied out whole. A chunk whose bytes do not hold the UTF-16
//! name of any wanted provider is skipped before its records are parsed: a provider's name is a
//! value in the event's template or substitutions, so it is in the chunk of every record it wrote.
//! A chunk that cannot be parsed is reported and skipped; the walk goes on with the next one.

use std::collections::BTreeMap;
use std::sync::Arc;

use evtx::{EvtxParser, ParserSettings};
use serde::Serialize;
use serde_json::Value;
use winre_readat::{Cursor, ReadAt};

/// At most this many matching events are kept from one log (a real System.evtx of 20 MiB holds
/// some 50,000 records of every provider; those of the few wanted ones are far fewer).
pub const MAX_EVENTS: usize = 100_000;

/// One event of a wanted provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEvent {
    /// `System/Provider/@Name`, e.g. "Microsoft-Windows-WinREAgent".
    pub provider: String,
    /// `System/EventID`.
    pub event_id: u32,
    /// The record's EventRecordID.
    pub record_id: u64,
    /// When the record was written, UTC, RFC 3339 ("2025-04-08T17:02:11.5Z").
    pub time: String,
    /// `EventData` (or `UserData`) fields by name, as text.
    pub fields: BTreeMap<String, String>,
}

/// What one walk found.
#[derive(Debug, Clone, Default)]
pub struct LogRead {
    /// The wanted events, in record order.
    pub events: Vec<LogEvent>,
    /// Chunks and records that could not be read, each with where it is.
    pub problems: Vec<String>,
    /// Chunks in the file, and how many of them were parsed (the others held no wanted provider).
    pub chunks: u64,
    /// Chunks whose records were parsed.
    pub chunks_parsed: u64,
}

/// Reads `log` (the bytes of an .evtx file; `name` says which, in problems) and keeps the events
/// whose provider is in `providers` (compared case-insensitively) and whose id is in its list.
pub fn read_log(
    log: Arc<dyn ReadAt>,
    name: &str,
    providers: &[(&str, &[u32])],
) -> crate::Result<LogRead> {
    let settings = ParserSettings::new()
        .num_threads(1)
        .separate_json_attributes(false)
        .indent(false);
    let mut parser = EvtxParser::from_read_seek(Cursor::new(log))
        .map_err(|e| crate::Error::corrupt(format!("event log {name}"), 0, e.to_string()))?
        .with_configuration(settings.clone());
    let settings = Arc::new(settings);
    let needles: Vec<Vec<u8>> = providers
        .iter()
        .map(|(p, _)| p.encode_utf16().flat_map(u16::to_le_bytes).collect())
        .collect();
    let mut read = LogRead::default();
    for chunk in parser.chunks() {
        read.chunks = read.chunks.saturating_add(1);
        let mut chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                read.problems.push(format!("event log {name}: {e}"));
                continue;
            }
        };
        if !needles
            .iter()
            .any(|n| memchr::memmem::find(&chunk.data, n).is_some())
        {
            continue;
        }
        read.chunks_parsed = read.chunks_parsed.saturating_add(1);
        let number = chunk.number.unwrap_or(0);
        let mut parsed = match chunk.parse(Arc::clone(&settings)) {
            Ok(p) => p,
            Err(e) => {
                read.problems
                    .push(format!("event log {name}: chunk {number}: {e}"));
                continue;
            }
        };
        for record in parsed.iter() {
            let record = match record.and_then(|r| r.into_json_value()) {
                Ok(r) => r,
                Err(e) => {
                    read.problems
                        .push(format!("event log {name}: chunk {number}: {e}"));
                    continue;
                }
            };
            let Some(event) = event_of(&record.data, record.event_record_id, record.timestamp)
            else {
                continue;
            };
            let wanted = providers.iter().any(|(p, ids)| {
                p.eq_ignore_ascii_case(&event.provider) && ids.contains(&event.event_id)
            });
            if wanted && read.events.len() < MAX_EVENTS {
                read.events.push(event);
            }
        }
    }
    if read.events.len() >= MAX_EVENTS {
        read.problems.push(format!(
            "event log {name}: more than {MAX_EVENTS} matching events; the rest are not listed"
        ));
    }
    Ok(read)
}

/// The provider, id and fields of one rendered record (`{"Event": {"System": ..., "EventData": ...}}`).
fn event_of(json: &Value, record_id: u64, time: evtx::Timestamp) -> Option<LogEvent> {
    let event = json.get("Event")?;
    let system = event.get("System")?;
    let provider = system
        .get("Provider")
        .and_then(|p| attribute(p, "Name"))
        .unwrap_or_default();
    let event_id = system.get("EventID").and_then(|id| {
        let id = id.get("#text").unwrap_or(id);
        id.as_u64()
            .or_else(|| id.as_str().and_then(|s| s.trim().parse().ok()))
    })?;
    let mut fields = BTreeMap::new();
    for section in ["EventData", "UserData"] {
        if let Some(data) = event.get(section) {
            collect_fields(data, &mut fields);
        }
    }
    Some(LogEvent {
        provider,
        event_id: u32::try_from(event_id).ok()?,
        record_id,
        time: time.to_string(),
        fields,
    })
}

/// `node`'s attribute `name`, whether the renderer put attributes under `#attributes` or not.
fn attribute(node: &Value, name: &str) -> Option<String> {
    node.get("#attributes")
        .and_then(|a| a.get(name))
        .or_else(|| node.get(name))
        .and_then(text)
}

/// Flattens `EventData` (named `Data` elements rendered as keys, or an unnamed `Data` array) and
/// `UserData` (one element of named children) into name → text.
fn collect_fields(data: &Value, fields: &mut BTreeMap<String, String>) {
    let Some(map) = data.as_object() else {
        return;
    };
    for (key, value) in map {
        if key == "#attributes" {
            continue;
        }
        match value {
            Value::Object(inner) if !inner.contains_key("#text") => {
                collect_fields(value, fields);
            }
            Value::Array(items) if key == "Data" => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(t) = text(item) {
                        fields.insert(format!("Data{i}"), t);
                    }
                }
            }
            other => {
                if let Some(t) = text(other) {
                    fields.insert(key.clone(), t);
                }
            }
        }
    }
}

/// A JSON leaf as text (`{"#text": x}` counts as `x`); `None` for null.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("#text").and_then(text),
        Value::Array(items) => Some(items.iter().filter_map(text).collect::<Vec<_>>().join("\n")),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_both_renderings() {
        let json: Value = serde_json::from_str(
            r##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-WindowsUpdateClient"}},
                "EventID":{"#attributes":{"Qualifiers":""},"#text":20}},
                "EventData":{"errorCode":"0x80070643","updateTitle":"2025-04 KB5057589"}}}"##,
        )
        .unwrap();
        let e = event_of(&json, 7, evtx::Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(e.provider, "Microsoft-Windows-WindowsUpdateClient");
        assert_eq!(e.event_id, 20);
        assert_eq!(e.fields["errorCode"], "0x80070643");
        assert_eq!(e.time, "1970-01-01T00:00:00Z");
        let json: Value = serde_json::from_str(
            r##"{"Event":{"System":{"Provider":{"Name":"P"},"EventID":"4104"},
                "EventData":{"Data":["a",null,"b"]},"UserData":{"X":{"Y":"z"}}}}"##,
        )
        .unwrap();
        let e = event_of(&json, 1, evtx::Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(e.event_id, 4104);
        assert_eq!(e.fields["Data0"], "a");
        assert_eq!(e.fields["Data2"], "b");
        assert_eq!(e.fields["Y"], "z");
        assert!(event_of(&serde_json::json!({"x": 1}), 1, evtx::Timestamp::UNIX_EPOCH).is_none());
    }
}
