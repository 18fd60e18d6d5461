//! Reading a plan file: bounded bytes → UTF-8 → YAML (serde-saphyr, with spans) → a JSON value
//! for the schema, and a map from JSON Pointer back to the YAML source.

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{Budget, DuplicateKeyPolicy, Location, Options, Spanned};

use crate::plan::diagnostic::{Code, Diagnostic, Target};
use crate::plan::span::{ByteSpan, LineIndex, NodeSpan, SourceMap, join};

/// The largest plan file read: real plans are a few kilobytes.
pub const MAX_PLAN_BYTES: u64 = 1024 * 1024;
/// The deepest nesting a plan may have; the format itself needs about 8.
pub const MAX_DEPTH: usize = 64;

/// The most YAML nodes a plan may expand to, aliases included: a large real plan has a few
/// thousand; an alias bomb has billions.
pub const MAX_NODES: usize = 50_000;

/// A plan's text with what is needed to point into it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user named it.
    pub path: PathBuf,
    pub text: String,
    pub lines: LineIndex,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let lines = LineIndex::new(&text);
        Self {
            path: path.into(),
            text,
            lines,
        }
    }

    pub fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// A plan parsed as far as YAML: the document as JSON, and where each node came from.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub map: SourceMap,
}

/// Reading failed before there was any text to point into.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReadError {
    #[error("failed to read plan `{path}`")]
    #[diagnostic(code(io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is a directory, not a plan file")]
    #[diagnostic(code(io), help("name the plan's YAML file, not its folder"))]
    Directory { path: PathBuf },
}

/// What reading a file gives: the I/O error, a problem with the bytes (reported as a diagnostic
/// at the start of the file), or the text.
pub enum Loaded {
    Text(Source),
    Invalid(Source, Diagnostic),
}

/// Reads a plan file, bounded in size.
pub fn read(path: &Path) -> Result<Loaded, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = open_without_waiting(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if metadata.is_dir() {
        return Err(ReadError::Directory {
            path: path.to_owned(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        let size = metadata.len().max(bytes.len() as u64);
        let diagnostic = Diagnostic::error(
            Code::TooLarge,
            "",
            format!("plan is {size} bytes; the limit is {MAX_PLAN_BYTES} bytes (1 MiB)"),
        )
        .with_target(Target::Span(ByteSpan::new(0, 0)))
        .with_help("a plan is a few kilobytes: is this the right file?");
        return Ok(Loaded::Invalid(
            Source::new(path, String::new()),
            diagnostic,
        ));
    }
    Ok(from_bytes(path, bytes))
}

/// Opens a file to read without waiting for a writer: a FIFO nobody writes to reads as empty
/// (and is said to be no plan) instead of blocking `open` forever, while a pipe someone writes
/// to (`validate <(generate)`) reads as it is written.
fn open_without_waiting(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    // Reads block again once open: a writer's next bytes are waited for, not an EAGAIN.
    #[cfg(unix)]
    {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = OFlag::from_bits_truncate(fcntl(&file, FcntlArg::F_GETFL)?);
        fcntl(&file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    }
    Ok(file)
}

/// Checks that bytes are UTF-8; an invalid sequence is reported where it stands.
pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Loaded {
    match String::from_utf8(bytes) {
        Ok(text) => Loaded::Text(Source::new(path, text)),
        Err(error) => {
            let valid = error.utf8_error().valid_up_to();
            let bytes = error.into_bytes();
            // Keep the valid prefix so the report can show the line that goes wrong.
            let text = String::from_utf8_lossy(&bytes[..valid]).into_owned();
            let diagnostic = Diagnostic::error(
                Code::NotUtf8,
                "",
                format!("plan is not valid UTF-8 (bad byte 0x{:02x})", bytes[valid]),
            )
            .with_target(Target::Span(ByteSpan::new(valid, 0)))
            .with_help("save the file as UTF-8");
            Loaded::Invalid(Source::new(path, text), diagnostic)
        }
    }
}

/// Parses YAML text into a document, or the one diagnostic that stopped the parser.
pub fn parse(source: &Source) -> Result<Document, Diagnostic> {
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_events = 4 * MAX_NODES;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_NODES;
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    // YAML 1.2 booleans only: `on:` (a notify key) and `no` stay strings, as schema tools read them.
    options.strict_booleans = true;
    let root: Option<Node> = serde_saphyr::from_str_with_options(&source.text, options)
        .map_err(|error| yaml_error(source, &error))?;
    let Some(root) = root.filter(|node| !matches!(node.value, Raw::Null)) else {
        return Err(Diagnostic::error(Code::Empty, "", "plan is empty")
            .with_target(Target::Span(ByteSpan::new(0, 0)))
            .with_help("a plan needs at least `version`, `name` and `stages`"));
    };
    let mut map = SourceMap::default();
    let value = to_json(root, String::new(), None, &mut map, source)?;
    Ok(Document { value, map })
}

fn yaml_error(source: &Source, error: &serde_saphyr::Error) -> Diagnostic {
    let raw = yaml_message(error);
    let about_a_tab = raw.contains("a tab") || raw.starts_with("tabs ");
    let (code, message) = if raw.contains("duplicate mapping key") {
        let key = raw
            .split(": ")
            .nth(1)
            .and_then(|k| k.split(',').next())
            .unwrap_or("?");
        (
            Code::DuplicateKey,
            format!("duplicate key `{key}`: a key may appear once in a mapping"),
        )
    } else if raw.contains("multiple YAML documents") || raw.contains("Documents") {
        (
            Code::YamlSyntax,
            "the file holds several YAML documents (`---`); a plan is one document".to_owned(),
        )
    } else if raw.contains("Nodes") || raw.contains("Events") || raw.contains("replay") {
        (
            Code::YamlLimit,
            format!(
                "the plan expands to more than {MAX_NODES} YAML nodes (aliases included); is it an alias bomb?"
            ),
        )
    } else if raw.contains("recursion") || raw.contains("Depth") || raw.contains("depth") {
        (
            Code::YamlLimit,
            format!("the plan nests deeper than {MAX_DEPTH} levels"),
        )
    } else if raw.contains("unknown anchor") {
        let offset = error
            .location()
            .map_or(0, |location| byte_offset(source, location));
        let name: String = source
            .text
            .get(offset..)
            .and_then(|rest| rest.strip_prefix('*'))
            .map(|rest| {
                rest.chars()
                    .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                    .collect()
            })
            .unwrap_or_default();
        (
            Code::YamlSyntax,
            format!(
                "alias `*{name}` refers to no anchor: `&{name}` must be defined above its first use"
            ),
        )
    } else if raw.contains("budget") || raw.contains("limit") || raw.contains("alias") {
        (Code::YamlLimit, raw)
    } else {
        (Code::YamlSyntax, raw)
    };
    let mut offset = error
        .location()
        .map_or(0, |location| byte_offset(source, location));
    if about_a_tab {
        offset = tab_near(source, offset).unwrap_or(offset);
    }
    let mut diagnostic =
        Diagnostic::error(code, "", message).with_target(Target::Span(ByteSpan::new(offset, 0)));
    if source.text[..offset.min(source.text.len())]
        .rsplit('\n')
        .next()
        .is_some_and(|line| line.contains('\t'))
        || code == Code::YamlSyntax && source.text.lines().any(|l| l.starts_with('\t'))
    {
        diagnostic = diagnostic.with_help("YAML indentation must use spaces, not tabs");
    }
    diagnostic
}

/// The tab a tab error is about: the parser reports it where it stopped — just after the tab,
/// or at the scalar on the line above when the tab indents the next line.
fn tab_near(source: &Source, offset: usize) -> Option<usize> {
    let text = &source.text;
    let offset = offset.min(text.len());
    let before = text[..offset]
        .char_indices()
        .rev()
        .take_while(|(_, c)| *c == ' ' || *c == '\t')
        .filter(|(_, c)| *c == '\t')
        .last()
        .map(|(i, _)| i);
    before.or_else(|| {
        let tab = offset + text[offset..].find('\t')?;
        (source.lines.line_of(tab) <= source.lines.line_of(offset) + 1).then_some(tab)
    })
}

/// serde-saphyr's message, without its own snippet and location (ours come separately).
fn yaml_message(error: &serde_saphyr::Error) -> String {
    let text = error.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let first = first
        .rsplit_once(" at line ")
        .map_or(first, |(message, _)| message);
    let mut message = first.trim_start_matches("error: ").to_owned();
    if let Some(c) = message.get(..1) {
        let lower = c.to_lowercase();
        message.replace_range(..1, &lower);
    }
    message
}

fn byte_offset(source: &Source, location: Location) -> usize {
    if let Some(offset) = location.span().byte_offset() {
        return usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(source.text.len());
    }
    let line = usize::try_from(location.line()).unwrap_or(usize::MAX);
    let column = usize::try_from(location.column()).unwrap_or(usize::MAX);
    source.lines.offset(&source.text, line, column)
}

fn byte_span(source: &Source, location: Location) -> ByteSpan {
    let span = location.span();
    match (span.byte_offset(), span.byte_len()) {
        (Some(offset), Some(len)) => ByteSpan::new(
            usize::try_from(offset).unwrap_or(usize::MAX),
            usize::try_from(len).unwrap_or(0),
        ),
        _ => ByteSpan::new(byte_offset(source, location), 0),
    }
}

/// Converts the spanned YAML tree to JSON, recording the span of every node.
fn to_json(
    node: Node,
    pointer: String,
    key: Option<ByteSpan>,
    map: &mut SourceMap,
    source: &Source,
) -> Result<Value, Diagnostic> {
    let span = byte_span(source, node.location);
    map.insert(pointer.clone(), NodeSpan { key, value: span });
    Ok(match node.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Number(i.into()),
        Raw::UInt(u) => Value::Number(u.into()),
        Raw::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Raw::Str(s) => Value::String(s),
        Raw::Seq(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| to_json(item, format!("{pointer}/{i}"), None, map, source))
                .collect::<Result<_, _>>()?,
        ),
        Raw::Map(entries) => {
            let mut object = Map::new();
            let mut first_spans: HashMap<String, ByteSpan> = HashMap::new();
            for (key_node, value) in entries {
                let key_span = byte_span(source, key_node.location);
                let name = match key_node.value {
                    Raw::Str(s) => s,
                    Raw::Int(i) => i.to_string(),
                    Raw::UInt(u) => u.to_string(),
                    Raw::Bool(b) => b.to_string(),
                    Raw::Float(f) => f.to_string(),
                    Raw::Null => "null".to_owned(),
                    Raw::Seq(_) | Raw::Map(_) => {
                        return Err(Diagnostic::error(
                            Code::YamlSyntax,
                            pointer,
                            "a mapping key must be a plain value, not a list or a mapping",
                        )
                        .with_target(Target::Span(key_span)));
                    }
                };
                if let Some(first) = first_spans.get(&name) {
                    return Err(duplicate_key(source, &pointer, &name, *first, key_span));
                }
                first_spans.insert(name.clone(), key_span);
                let child = join(&pointer, &name);
                let value = to_json(value, child, Some(key_span), map, source)?;
                object.insert(name, value);
            }
            Value::Object(object)
        }
    })
}

/// Two keys of one mapping that YAML reads as the same value (`~`, `null` and `Null` are all
/// null; `1` and `0x1` are one number): serde-saphyr compares keys as written, so the second would
/// silently replace the first.
fn duplicate_key(
    source: &Source,
    pointer: &str,
    name: &str,
    first: ByteSpan,
    second: ByteSpan,
) -> Diagnostic {
    let written = |span: ByteSpan| {
        source
            .text
            .get(span.offset..span.offset + span.len)
            .unwrap_or(name)
            .to_owned()
    };
    let (line, _) = source.lines.line_col(&source.text, first.offset);
    let (first_text, second_text) = (written(first), written(second));
    let message = if first_text == second_text {
        format!("duplicate key `{name}`: a key may appear once in a mapping (first on line {line})")
    } else {
        format!(
            "duplicate key `{name}`: `{second_text}` and `{first_text}` (line {line}) are the same key once YAML reads them"
        )
    };
    Diagnostic::error(Code::DuplicateKey, pointer, message)
        .with_target(Target::Span(second))
        .with_help("give each key its own name; quote a key (`\"null\"`) to keep it a string")
}

/// A YAML node and where it stands.
#[derive(Debug)]
struct Node {
    value: Raw,
    location: Location,
}

#[derive(Debug)]
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Raw>::deserialize(deserializer)?;
        Ok(Node {
            value: spanned.value,
            location: spanned.referenced,
        })
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        i64::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        u64::try_from(v)
            .map(Raw::UInt)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Raw, E> {
        Err(E::custom("binary values are not allowed in a plan"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = access.next_entry::<Node, Node>()? {
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}
