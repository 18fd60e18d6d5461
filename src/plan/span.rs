//! Where each part of a plan stands in its file: JSON Pointer → byte span → line and column.

use std::collections::HashMap;

/// A byte range in a plan's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSpan {
    pub offset: usize,
    pub len: usize,
}

impl ByteSpan {
    pub fn new(offset: usize, len: usize) -> Self {
        Self { offset, len }
    }
}

impl From<ByteSpan> for miette::SourceSpan {
    fn from(span: ByteSpan) -> Self {
        (span.offset, span.len).into()
    }
}

/// The spans of one node: its key (for a mapping entry) and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpan {
    pub key: Option<ByteSpan>,
    pub value: ByteSpan,
}

/// JSON Pointer → spans, for every node of a plan.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    nodes: HashMap<String, NodeSpan>,
}

impl SourceMap {
    pub fn insert(&mut self, pointer: String, span: NodeSpan) {
        self.nodes.insert(pointer, span);
    }

    /// The spans at `pointer`, or those of its nearest ancestor that exists (a missing key is
    /// reported on the mapping that lacks it).
    pub fn lookup(&self, pointer: &str) -> Option<NodeSpan> {
        let mut current = pointer;
        loop {
            if let Some(span) = self.nodes.get(current) {
                return Some(*span);
            }
            if current.is_empty() {
                return None;
            }
            current = current.rfind('/').map_or("", |i| &current[..i]);
        }
    }

    /// Whether the pointer names an existing node itself (not an ancestor).
    pub fn contains(&self, pointer: &str) -> bool {
        self.nodes.contains_key(pointer)
    }
}

/// Byte offset → 1-based line and column (in characters), for a text. Lines break at `\n`, at
/// `\r\n` and at a lone `\r` (old Mac files), as YAML and miette count them.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    /// Whether each line is ASCII, so that its columns are byte counts (a long line is not
    /// counted character by character for each of its findings).
    ascii: Vec<bool>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        for (i, &byte) in bytes.iter().enumerate() {
            if byte == b'\n' || (byte == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
                starts.push(i + 1);
            }
        }
        let ascii = starts
            .iter()
            .enumerate()
            .map(|(line, &start)| {
                let end = starts.get(line + 1).copied().unwrap_or(text.len());
                bytes[start..end].is_ascii()
            })
            .collect();
        Self { starts, ascii }
    }

    /// How many lines the text has (a final line break starts an empty last line).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Always false: even an empty text has one (empty) line.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The byte range of a 1-based line, without its line break.
    pub fn line_range(&self, text: &str, line: usize) -> std::ops::Range<usize> {
        let index = line.clamp(1, self.starts.len()) - 1;
        let start = self.starts[index];
        let mut end = self.starts.get(index + 1).copied().unwrap_or(text.len());
        let bytes = text.as_bytes();
        if end > start && index + 1 < self.starts.len() {
            end -= 1; // `\n` or a lone `\r`
            if bytes[end] == b'\n' && end > start && bytes[end - 1] == b'\r' {
                end -= 1;
            }
        }
        start..end
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }

    /// 1-based line and column of a byte offset; columns count characters, as editors do.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.line_of(offset) - 1;
        let start = self.starts[line];
        let column = if self.ascii[line] {
            offset - start
        } else {
            text.get(start..offset)
                .map_or(offset - start, |prefix| prefix.chars().count())
        };
        (line + 1, column + 1)
    }

    /// The byte offset of a 1-based line and column (columns in characters).
    pub fn offset(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(&start) = self.starts.get(line.saturating_sub(1)) else {
            return text.len();
        };
        text[start..]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(text.len(), |(i, _)| start + i)
    }
}

/// Escapes one reference token of a JSON Pointer (RFC 6901).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Appends a token to a pointer.
pub fn join(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", escape_token(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a: 1\nbé: x\n";
        let index = LineIndex::new(text);
        assert_eq!(index.line_col(text, 0), (1, 1));
        assert_eq!(index.line_col(text, 5), (2, 1));
        // 'x' is after "bé: ", 4 characters but 5 bytes.
        assert_eq!(index.line_col(text, 10), (2, 5));
        assert_eq!(index.offset(text, 2, 5), 10);
    }

    #[test]
    fn a_lone_cr_and_crlf_each_break_a_line_once() {
        let text = "a: 1\rb: 2\r\nc: 3\nd";
        let index = LineIndex::new(text);
        assert_eq!(index.len(), 4);
        assert_eq!(index.line_col(text, 5), (2, 1));
        assert_eq!(index.line_col(text, 8), (2, 4));
        assert_eq!(index.line_col(text, 11), (3, 1));
        assert_eq!(index.line_col(text, 16), (4, 1));
        assert_eq!(index.line_range(text, 1), 0..4);
        assert_eq!(index.line_range(text, 2), 5..9);
        assert_eq!(index.line_range(text, 3), 11..15);
        assert_eq!(index.line_range(text, 4), 16..17);
    }

    #[test]
    fn lookup_falls_back_to_the_nearest_ancestor() {
        let mut map = SourceMap::default();
        let span = NodeSpan {
            key: None,
            value: ByteSpan::new(3, 4),
        };
        map.insert("/stages/0".into(), span);
        assert_eq!(map.lookup("/stages/0/traffic"), Some(span));
        assert_eq!(map.lookup("/gates"), None);
    }

    #[test]
    fn tokens_are_escaped() {
        assert_eq!(join("/a", "b/c~d"), "/a/b~1c~0d");
    }
}
