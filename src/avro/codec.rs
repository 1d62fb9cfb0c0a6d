//! A direct JSON <-> Avro binary codec, walking a schema whose named types are looked up once.
//!
//! apache-avro's public encode and decode functions rebuild the schema's name table on every
//! call and go through its `Value` tree (JSON -> `Value` -> resolved `Value` -> bytes), which made
//! them about 25 times the cost of the transform itself (`cargo bench --bench avro`). The relay
//! encodes every record with our own schema, and the consumer decodes every record that was
//! written with it, so both take this path. Records written with any other schema still go through
//! apache-avro's schema resolution (`wire.rs`).
//!
//! Encoding follows the rules the resolution applied: a missing field takes its default, a union
//! takes the branch that matches the JSON value's kind, fields the schema lacks are ignored.
//! Decoding yields the JSON the processor reads, with `null` fields left out as the API does.
//! The wire tests check both against apache-avro byte for byte.

use apache_avro::Schema;
use apache_avro::schema::{RecordSchema, UnionSchema};
use serde_json::{Map, Number, Value as Json};
use std::collections::HashMap;

/// A schema with its named types, for resolving references (`"type": "Dated"`).
pub struct Codec<'s> {
    root: &'s Schema,
    names: HashMap<&'s str, &'s Schema>,
}

impl<'s> Codec<'s> {
    pub fn new(root: &'s Schema) -> Self {
        let mut names = HashMap::new();
        collect_names(root, &mut names);
        Self { root, names }
    }

    /// Appends the Avro binary encoding of `json` to `out`; the error names the field.
    pub fn encode(&self, json: &Json, out: &mut Vec<u8>) -> Result<(), String> {
        self.write(Some(json), self.root, out)
    }

    /// Decodes one datum, which must be consumed exactly.
    pub fn decode(&self, datum: &[u8]) -> Result<Json, String> {
        let mut input = datum;
        let json = self.read(self.root, &mut input)?;
        if !input.is_empty() {
            return Err(format!("{} bytes left over after the record", input.len()));
        }
        Ok(json)
    }

    fn resolve(&self, schema: &'s Schema) -> Result<&'s Schema, String> {
        match schema {
            Schema::Ref { name } => self
                .names
                .get(name.name.as_str())
                .copied()
                .ok_or_else(|| format!("unknown type {}", name.name)),
            other => Ok(other),
        }
    }

    fn write(
        &self,
        json: Option<&Json>,
        schema: &'s Schema,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let kind = |expected: &str| {
            format!(
                "expected {expected}, found {}",
                json.map_or("nothing".into(), describe)
            )
        };
        match (self.resolve(schema)?, json) {
            (Schema::Null, None | Some(Json::Null)) => {}
            (Schema::Boolean, Some(Json::Bool(b))) => out.push(u8::from(*b)),
            (Schema::Int, Some(Json::Number(n))) => {
                let n = n
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| kind("an int"))?;
                write_long(i64::from(n), out);
            }
            (Schema::Long, Some(Json::Number(n))) => {
                write_long(n.as_i64().ok_or_else(|| kind("a long"))?, out);
            }
            (Schema::Double, Some(Json::Number(n))) => {
                out.extend_from_slice(&n.as_f64().ok_or_else(|| kind("a double"))?.to_le_bytes());
            }
            (Schema::Float, Some(Json::Number(n))) => {
                let n = n.as_f64().ok_or_else(|| kind("a float"))? as f32;
                out.extend_from_slice(&n.to_le_bytes());
            }
            (Schema::String, Some(Json::String(s))) => write_bytes(s.as_bytes(), out),
            (Schema::Union(union), _) => {
                let (index, branch) = self.branch(union, json).ok_or_else(|| {
                    kind(&format!(
                        "one of {:?}",
                        union.variants().iter().map(kind_of).collect::<Vec<_>>()
                    ))
                })?;
                write_long(index as i64, out);
                self.write(json, branch, out)?;
            }
            (Schema::Record(record), Some(Json::Object(object))) => {
                self.write_record(record, object, out)?;
            }
            (Schema::Array(array), Some(Json::Array(items))) => {
                if !items.is_empty() {
                    write_long(items.len() as i64, out);
                    for (i, item) in items.iter().enumerate() {
                        self.write(Some(item), &array.items, out)
                            .map_err(|e| format!("[{i}]: {e}"))?;
                    }
                }
                out.push(0);
            }
            (Schema::Map(map), Some(Json::Object(entries))) => {
                if !entries.is_empty() {
                    write_long(entries.len() as i64, out);
                    for (key, value) in entries {
                        write_bytes(key.as_bytes(), out);
                        self.write(Some(value), &map.types, out)
                            .map_err(|e| format!("{key}: {e}"))?;
                    }
                }
                out.push(0);
            }
            (schema, _) => return Err(kind(&kind_of(schema))),
        }
        Ok(())
    }

    fn write_record(
        &self,
        record: &'s RecordSchema,
        object: &Map<String, Json>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        for field in &record.fields {
            let value =
                match object.get(&field.name) {
                    Some(value) => Some(value),
                    None => Some(field.default.as_ref().ok_or_else(|| {
                        format!("{}: missing, and it has no default", field.name)
                    })?),
                };
            self.write(value, &field.schema, out)
                .map_err(|e| format!("{}: {e}", field.name))?;
        }
        Ok(())
    }

    /// The union branch for a JSON value: its kind decides, integers prefer `long`, then `int`.
    fn branch(&self, union: &'s UnionSchema, json: Option<&Json>) -> Option<(usize, &'s Schema)> {
        let fits = |schema: &Schema| -> bool {
            matches!(
                (schema, json),
                (Schema::Null, None | Some(Json::Null))
                    | (Schema::Boolean, Some(Json::Bool(_)))
                    | (Schema::String, Some(Json::String(_)))
                    | (Schema::Record(_) | Schema::Map(_), Some(Json::Object(_)))
                    | (Schema::Array(_), Some(Json::Array(_)))
            )
        };
        let numeric = |wanted: &[fn(&Schema) -> bool]| {
            wanted.iter().find_map(|matches| {
                union
                    .variants()
                    .iter()
                    .enumerate()
                    .find(|(_, s)| matches(s))
            })
        };
        let variants = || {
            union
                .variants()
                .iter()
                .enumerate()
                .map(|(i, s)| (i, self.resolve(s).unwrap_or(s)))
        };
        match json {
            Some(Json::Number(n)) if n.is_i64() || n.is_u64() => numeric(&[
                |s| matches!(s, Schema::Long),
                |s| matches!(s, Schema::Int),
                |s| matches!(s, Schema::Double),
                |s| matches!(s, Schema::Float),
            ]),
            Some(Json::Number(_)) => numeric(&[
                |s| matches!(s, Schema::Double),
                |s| matches!(s, Schema::Float),
            ]),
            _ => variants().find(|(_, s)| fits(s)),
        }
    }

    fn read(&self, schema: &'s Schema, input: &mut &[u8]) -> Result<Json, String> {
        Ok(match self.resolve(schema)? {
            Schema::Null => Json::Null,
            Schema::Boolean => match take(input, 1)? {
                [0] => Json::Bool(false),
                [1] => Json::Bool(true),
                [b] => return Err(format!("invalid boolean byte {b}")),
                _ => unreachable!("took one byte"),
            },
            Schema::Int => {
                let n = read_long(input)?;
                Json::from(i32::try_from(n).map_err(|_| format!("int out of range: {n}"))?)
            }
            Schema::Long => Json::from(read_long(input)?),
            Schema::Double => {
                let bytes: [u8; 8] = take(input, 8)?.try_into().expect("took 8 bytes");
                number(f64::from_le_bytes(bytes))?
            }
            Schema::Float => {
                let bytes: [u8; 4] = take(input, 4)?.try_into().expect("took 4 bytes");
                number(f64::from(f32::from_le_bytes(bytes)))?
            }
            Schema::String => Json::String(read_string(input)?),
            Schema::Union(union) => {
                let index = read_long(input)?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| {
                        format!(
                            "union branch {index} of a {}-branch union",
                            union.variants().len()
                        )
                    })?;
                self.read(branch, input)?
            }
            Schema::Record(record) => {
                let mut object = Map::new();
                for field in &record.fields {
                    let value = self
                        .read(&field.schema, input)
                        .map_err(|e| format!("{}: {e}", field.name))?;
                    if !value.is_null() {
                        object.insert(field.name.clone(), value);
                    }
                }
                Json::Object(object)
            }
            Schema::Array(array) => {
                let mut items = Vec::new();
                while let Some(count) = read_block(input)? {
                    for _ in 0..count {
                        items.push(self.read(&array.items, input)?);
                    }
                }
                Json::Array(items)
            }
            Schema::Map(map) => {
                let mut entries = Map::new();
                while let Some(count) = read_block(input)? {
                    for _ in 0..count {
                        let key = read_string(input)?;
                        entries.insert(key, self.read(&map.types, input)?);
                    }
                }
                Json::Object(entries)
            }
            other => return Err(format!("{} is not supported here", kind_of(other))),
        })
    }
}

fn collect_names<'s>(schema: &'s Schema, names: &mut HashMap<&'s str, &'s Schema>) {
    match schema {
        Schema::Record(record) => {
            names.insert(record.name.name.as_str(), schema);
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Union(union) => union
            .variants()
            .iter()
            .for_each(|s| collect_names(s, names)),
        Schema::Array(array) => collect_names(&array.items, names),
        Schema::Map(map) => collect_names(&map.types, names),
        _ => {}
    }
}

fn kind_of(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.name),
        Schema::Ref { name } => format!("record {}", name.name),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}

fn describe(json: &Json) -> String {
    match json {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(_) => "a string".into(),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

fn number(n: f64) -> Result<Json, String> {
    Number::from_f64(n)
        .map(Json::Number)
        .ok_or_else(|| format!("{n} has no JSON representation"))
}

/// Zig-zag varint, as Avro writes `int` and `long`.
fn write_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_long(bytes.len() as i64, out);
    out.extend_from_slice(bytes);
}

fn read_long(input: &mut &[u8]) -> Result<i64, String> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let [byte, rest @ ..] = *input else {
            return Err("datum ends inside a number".into());
        };
        *input = rest;
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    Err("number longer than 10 bytes".into())
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if input.len() < n {
        return Err(format!("datum ends {} bytes early", n - input.len()));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn read_string(input: &mut &[u8]) -> Result<String, String> {
    let len = read_long(input)?;
    let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
    let bytes = take(input, len)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("string is not UTF-8: {e}"))
}

/// The next block's item count, `None` at the end; a negative count is followed by a size.
fn read_block(input: &mut &[u8]) -> Result<Option<u64>, String> {
    match read_long(input)? {
        0 => Ok(None),
        n if n < 0 => {
            read_long(input)?;
            Ok(Some(n.unsigned_abs()))
        }
        n => Ok(Some(n as u64)),
    }
}
