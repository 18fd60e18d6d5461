//! The schema as the text `ion-plan schema` prints: JSON whose objects list their properties in
//! the order the model declares them (`name` first in a stage), so that an editor offers keys in
//! the order a person writes them; keywords lead with what a reader looks for first.
//!
//! `serde_json` sorts object keys (its `preserve_order` feature would change the order of every
//! JSON value the program prints), so the order is taken from serde's own list of each struct's
//! fields and the text written here.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::Value;

/// Keywords written first, in this order; the rest follow alphabetically.
const LEADING: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "markdownDescription",
    "type",
    "default",
    "examples",
    "enum",
    "enumDescriptions",
    "markdownEnumDescriptions",
    "$ref",
];

/// Name-keyed maps whose values are schemas: their keys are names, never keywords.
const NAME_MAPS: &[&str] = &[
    "properties",
    "$defs",
    "patternProperties",
    "dependentRequired",
];

/// The fields of a struct in declaration order, as its derived `Deserialize` hands them to
/// `deserialize_struct` (the names a plan spells, after `rename`).
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields = None;
    let _ = T::deserialize(FieldNames(&mut fields));
    fields.unwrap_or_default()
}

/// `(definition, its fields)`, for the root (named by `root`) and each `$defs` entry.
pub type Orders = [(&'static str, &'static [&'static str])];

/// The schema as pretty JSON (two-space indent, like `serde_json::to_string_pretty`).
pub fn to_text(schema: &Value, root: &str, orders: &Orders) -> String {
    let mut out = String::new();
    write(&mut out, schema, 0, Key::Schema(Some(root)), orders);
    out.push('\n');
    out
}

/// What the keys of an object being written are.
#[derive(Clone, Copy)]
enum Key<'a> {
    /// Keywords of a schema, which is the definition named, if any.
    Schema(Option<&'a str>),
    /// Names: properties of the definition named, if any, or other names.
    Names(Option<&'a str>),
    /// `$defs`: definition names, each value a definition.
    Defs,
}

fn write(out: &mut String, value: &Value, indent: usize, key: Key<'_>, orders: &Orders) {
    match value {
        Value::Object(object) if !object.is_empty() => {
            let keys = ordered_keys(object, key, orders);
            out.push_str("{\n");
            for (i, name) in keys.iter().enumerate() {
                push_indent(out, indent + 1);
                out.push_str(&Value::String((*name).clone()).to_string());
                out.push_str(": ");
                let child = match (key, name.as_str()) {
                    (Key::Schema(_), "$defs") => Key::Defs,
                    (Key::Schema(def), "properties") => Key::Names(def),
                    (Key::Schema(_), map) if NAME_MAPS.contains(&map) => Key::Names(None),
                    (Key::Defs, def) => Key::Schema(Some(def)),
                    _ => Key::Schema(None),
                };
                write(out, &object[name.as_str()], indent + 1, child, orders);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            push_indent(out, indent);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                push_indent(out, indent + 1);
                write(out, item, indent + 1, Key::Schema(None), orders);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            push_indent(out, indent);
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn ordered_keys<'a>(
    object: &'a serde_json::Map<String, Value>,
    key: Key<'_>,
    orders: &Orders,
) -> Vec<&'a String> {
    let first: &[&str] = match key {
        Key::Schema(_) => LEADING,
        Key::Names(Some(def)) => orders
            .iter()
            .find(|(name, _)| *name == def)
            .map_or(&[], |(_, fields)| fields),
        Key::Names(None) | Key::Defs => &[],
    };
    let mut keys: Vec<&String> = first
        .iter()
        .filter_map(|k| object.get_key_value(*k).map(|(k, _)| k))
        .collect();
    keys.extend(object.keys().filter(|k| !first.contains(&k.as_str())));
    keys
}

fn push_indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// A deserializer that only records the field list a derived struct asks for.
struct FieldNames<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_the_same_json_as_serde_writes() {
        let value = serde_json::json!({
            "$defs": { "A": { "properties": { "b": {"type": "string"}, "a": {} }, "type": "object" } },
            "description": "x", "items": [1, "two", [], {}], "$schema": "s",
        });
        let orders: &Orders = &[("A", &["b", "a"])];
        let text = to_text(&value, "Root", orders);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        assert!(text.starts_with("{\n  \"$schema\": \"s\",\n  \"description\": \"x\","));
        assert!(text.find("\"b\"").unwrap() < text.find("\"a\": {}").unwrap());
    }

    #[test]
    fn field_names_are_in_declaration_order() {
        assert_eq!(
            &field_names::<crate::plan::model::Stage>()[..3],
            ["name", "traffic", "bake"]
        );
    }
}
