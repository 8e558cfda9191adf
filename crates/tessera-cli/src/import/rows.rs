//! Reading an import file a line at a time: CSV (a header naming the
//! columns), JSON lines, or Keygen's license export; each row as an
//! [`ImportRow`] or the reason its line is not one.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, bail};
use clap::ValueEnum;
use tessera_protocol::wire::ImportRow;

use super::ImportArgs;

/// Longest line read: a longer one is not a license (a wrong file).
const MAX_LINE_BYTES: usize = 1 << 20;
/// Largest Keygen export read (one JSON document).
const MAX_KEYGEN_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A header line naming the columns, then one license per line.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Keygen's license export: `{"data": [{"type": "licenses", …}]}`.
    Keygen,
}

/// A row as read: the license, or why its line is not one.
pub(super) type Read1 = Result<ImportRow, (u64, String)>;

/// The rows of a file, in order, read a line at a time.
pub(super) struct Rows<'a> {
    reader: BufReader<std::fs::File>,
    format: Format,
    defaults: &'a ImportArgs,
    buf: Vec<u8>,
    line: u64,
    headers: Option<Vec<String>>,
    /// A Keygen export, read whole (it is one JSON document).
    keygen: Option<std::vec::IntoIter<serde_json::Value>>,
}

impl<'a> Rows<'a> {
    pub(super) fn open(
        path: &Path,
        format: Format,
        defaults: &'a ImportArgs,
    ) -> anyhow::Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let keygen = if format == Format::Keygen {
            let mut text = Vec::new();
            reader
                .by_ref()
                .take(MAX_KEYGEN_BYTES + 1)
                .read_to_end(&mut text)?;
            if text.len() as u64 > MAX_KEYGEN_BYTES {
                bail!("{} is over 1 GiB: not a Keygen export", path.display());
            }
            let doc: serde_json::Value = serde_json::from_slice(strip_bom(&text)?)
                .context("the file is not a JSON document (a Keygen export is {\"data\": […]})")?;
            let Some(serde_json::Value::Array(items)) = doc.get("data").cloned() else {
                bail!("no \"data\" list: not a Keygen license export");
            };
            Some(items.into_iter())
        } else {
            None
        };
        Ok(Self {
            reader,
            format,
            defaults,
            buf: Vec::new(),
            line: 0,
            headers: None,
            keygen,
        })
    }

    /// The next row (or why its line is not one); `None` at the end.
    pub(super) fn next(&mut self) -> anyhow::Result<Option<Read1>> {
        let row = match self.read()? {
            None => return Ok(None),
            Some(row) => row,
        };
        Ok(Some(row.map(|mut row| {
            if row.product.is_none() {
                row.product.clone_from(&self.defaults.product);
            }
            if row.policy.is_none() {
                row.policy.clone_from(&self.defaults.policy);
            }
            row
        })))
    }

    fn read(&mut self) -> anyhow::Result<Option<Read1>> {
        if let Some(items) = &mut self.keygen {
            let Some(item) = items.next() else {
                return Ok(None);
            };
            self.line += 1;
            return Ok(Some(keygen_row(self.line, &item, &self.defaults.plan)));
        }
        loop {
            self.buf.clear();
            let n = self
                .reader
                .by_ref()
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let line = self.line;
            if self.buf.len() > MAX_LINE_BYTES {
                bail!(
                    "line {line} is longer than {} MiB: is this the right file? Nothing was imported",
                    MAX_LINE_BYTES >> 20
                );
            }
            let bytes = if line == 1 {
                strip_bom(&self.buf)?
            } else {
                &self.buf[..]
            };
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Ok(Some(Err((
                    line,
                    "not UTF-8 text (save the file as UTF-8)".into(),
                ))));
            };
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            return Ok(Some(match self.format {
                Format::Jsonl => jsonl_row(line, text),
                Format::Csv => match &self.headers {
                    None => {
                        self.headers = Some(csv_headers(text)?);
                        continue;
                    }
                    Some(h) => csv_row(line, h, text),
                },
                Format::Keygen => unreachable!("read whole in open"),
            }));
        }
    }
}

/// The text after a UTF-8 byte-order mark; UTF-16 is refused by name.
fn strip_bom(bytes: &[u8]) -> anyhow::Result<&[u8]> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        bail!("the file is UTF-16: save it as UTF-8");
    }
    Ok(bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes))
}

fn jsonl_row(line: u64, text: &str) -> Read1 {
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| (line, format!("not a JSON object: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err((line, "not a JSON object".into()));
    };
    object.insert("row".into(), line.into());
    // What export-all adds to a row: an export imports back.
    for added in ["id", "revision", "created_at"] {
        object.remove(added);
    }
    if let Some(unknown) = object
        .keys()
        .find(|k| k.as_str() != "row" && !CSV_COLUMNS.contains(&k.as_str()))
    {
        return Err((
            line,
            format!(
                "unknown field {unknown:?}; fields are {}",
                CSV_COLUMNS.join(", ")
            ),
        ));
    }
    serde_json::from_value(value).map_err(|e| (line, e.to_string()))
}

pub(super) const CSV_COLUMNS: [&str; 15] = [
    "key",
    "key_sha256",
    "key_last4",
    "customer",
    "customer_email",
    "product",
    "policy",
    "plan",
    "features",
    "valid_from",
    "expires_at",
    "max_users",
    "max_machines",
    "state",
    "metadata",
];

fn csv_record(text: &str) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record.iter().map(|f| f.trim().to_owned()).collect()),
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(Vec::new()),
    }
}

fn csv_headers(text: &str) -> anyhow::Result<Vec<String>> {
    let headers = csv_record(text).map_err(|e| anyhow::anyhow!("line 1 (the header): {e}"))?;
    for h in &headers {
        if !CSV_COLUMNS.contains(&h.as_str()) {
            bail!(
                "line 1 names an unknown column {h:?}; columns are {}",
                CSV_COLUMNS.join(", ")
            );
        }
    }
    for needed in ["customer", "plan"] {
        if !headers.iter().any(|h| h == needed) {
            bail!("line 1 (the header) has no {needed:?} column");
        }
    }
    Ok(headers)
}

fn csv_row(line: u64, headers: &[String], text: &str) -> Read1 {
    let fields = csv_record(text).map_err(|e| (line, e))?;
    if fields.len() != headers.len() {
        return Err((
            line,
            format!(
                "{} fields, the header names {}",
                fields.len(),
                headers.len()
            ),
        ));
    }
    let mut object = serde_json::Map::new();
    object.insert("row".into(), line.into());
    for (h, v) in headers.iter().zip(fields) {
        if v.is_empty() {
            continue;
        }
        let value = match h.as_str() {
            "features" => v
                .split([',', ';'])
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(|f| serde_json::Value::String(f.to_owned()))
                .collect(),
            "max_users" | "max_machines" => serde_json::Value::Number(
                v.parse::<u32>()
                    .map_err(|_| (line, format!("{h} {v:?} is not a whole number")))?
                    .into(),
            ),
            "metadata" => serde_json::from_str(&v)
                .map_err(|e| (line, format!("metadata is not a JSON object: {e}")))?,
            _ => serde_json::Value::String(v),
        };
        object.insert(h.clone(), value);
    }
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| (line, e.to_string()))
}

/// A license of Keygen's export: its key kept, its limits and dates
/// mapped, its Keygen ids kept in the metadata (`keygen`).
fn keygen_row(row: u64, item: &serde_json::Value, plan: &str) -> Read1 {
    let a = &item["attributes"];
    if item["type"] != "licenses" {
        return Err((row, "not a license (its type is not \"licenses\")".into()));
    }
    let Some(key) = a["key"].as_str() else {
        return Err((row, "no attributes.key".into()));
    };
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let metadata = a["metadata"].as_object().cloned().unwrap_or_default();
    let id_of = |rel: &str| {
        item["relationships"][rel]["data"]["id"]
            .as_str()
            .map(str::to_owned)
    };
    let customer = text(&metadata.get("customer").cloned().unwrap_or_default())
        .or_else(|| text(&a["name"]))
        .or_else(|| {
            id_of("owner")
                .or_else(|| id_of("user"))
                .map(|u| format!("keygen user {u}"))
        })
        .or_else(|| text(&item["id"]))
        .unwrap_or_default();
    let mut kept = metadata.clone();
    kept.insert(
        "keygen".into(),
        serde_json::json!({"id": item["id"], "policy": id_of("policy"), "product": id_of("product")}),
    );
    let number = |v: &serde_json::Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    Ok(ImportRow {
        row,
        key: Some(key.to_owned()),
        customer,
        customer_email: metadata
            .get("email")
            .and_then(|e| e.as_str())
            .map(str::to_owned),
        plan: metadata
            .get("plan")
            .and_then(|p| p.as_str())
            .unwrap_or(plan)
            .to_owned(),
        valid_from: text(&a["created"]),
        expires_at: text(&a["expiry"]),
        max_users: number(&a["maxUsers"]),
        max_machines: number(&a["maxMachines"]),
        state: (a["suspended"] == true).then_some(tessera_protocol::wire::LicenseState::Suspended),
        metadata: Some(kept),
        ..ImportRow::default()
    })
}
