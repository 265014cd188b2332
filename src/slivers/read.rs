//! The serde half of the slivers reader: the input as given, each record
//! handed to the parent's judge as soon as it is read ([`top`]), so one bad
//! value costs only its key or its record. It owns one visitor for any JSON
//! value ([`Json`], strings borrowed from the input), the four keys of a
//! record bwmon reads ([`Fields`]), an rspec's [`KEYS`] ([`Keys`]), each a
//! value as given ([`Raw`]) that prints back for a message, and
//! every other value checked and dropped ([`Skip`]).
//!
//! By hand where derive would cost speed or behaviour (the figures are in
//! the parent's doc): the one visitor (`#[serde(untagged)]` buffers a value
//! and formats an error for each variant it misses), the loops over keys (a
//! derived struct refuses a repeated key; here the last one counts, as in
//! `serde_json::Map`, and a repeated top-level key is two records), and
//! `Skip` (`IgnoredAny` checks neither UTF-8, escapes, numbers nor nesting
//! depth).

use super::clip;
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::{borrow::Cow, fmt, marker::PhantomData};

/// The whole input: each record handed to `each` as soon as it is read
/// (its position from 1, its key in the object form, the record), so no
/// record is held in its raw form beyond its own reading; or the kind of a
/// top level that is neither an object nor an array.
pub(super) fn top<'a>(
    bytes: &'a [u8],
    each: impl FnMut(usize, Option<&str>, Json<'a, Fields<'a>>),
) -> serde_json::Result<Top> {
    // UTF-8 checked once here is not checked again string by string; invalid
    // UTF-8 goes the slow way, for serde_json's own message.
    let seed = TopSeed(each);
    match std::str::from_utf8(bytes) {
        Ok(text) => read_all(seed, serde_json::Deserializer::from_str(text)),
        Err(_) => read_all(seed, serde_json::Deserializer::from_slice(bytes)),
    }
}

fn read_all<'a, In, F>(
    seed: TopSeed<F>,
    mut de: serde_json::Deserializer<In>,
) -> serde_json::Result<Top>
where
    In: serde_json::de::Read<'a>,
    F: FnMut(usize, Option<&str>, Json<'a, Fields<'a>>),
{
    let top = seed.deserialize(&mut de)?;
    de.end()?;
    Ok(top)
}

/// The rspec keys read, in [`Rspec`](super::Rspec)'s order: rates, volumes, shares.
pub(super) const KEYS: [&str; 10] = [
    "net_min_rate",
    "net_max_rate",
    "net_i2_min_rate",
    "net_i2_max_rate",
    "net_max_kbyte",
    "net_i2_max_kbyte",
    "net_thresh_kbyte",
    "net_i2_thresh_kbyte",
    "net_share",
    "net_i2_share",
];

/// One JSON value: a scalar as given (strings borrowed unless escaped), an
/// array or object as `T` reads it.
pub(super) enum Json<'a, T> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(T),
    Object(T),
}

/// How [`Json`] reads the arrays and objects of one place in the input.
trait Container<'de>: Sized {
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error>;
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

impl<'de, T: Container<'de>> Deserialize<'de> for Json<'de, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor(PhantomData))
    }
}

struct JsonVisitor<T>(PhantomData<T>);

impl<'de, T: Container<'de>> Visitor<'de> for JsonVisitor<T> {
    type Value = Json<'de, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        // Finite from serde_json; as in a `Value`, anything else is null.
        Ok(Number::from_f64(f).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(s.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::seq(seq).map(Json::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::map(map).map(Json::Object)
    }
}

impl<T> Json<'_, T> {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// Any value, checked as a `Value` would be (UTF-8, escapes, numbers in
/// range, depth), and dropped.
struct Skip;

impl<'de> Container<'de> for Skip {
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<Json<Skip>>()?.is_some() {}
        Ok(Skip)
    }
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<Json<Skip>, Json<Skip>>()?.is_some() {}
        Ok(Skip)
    }
}

/// A value to read a number from. An array or object is never valid: it is
/// built, as a `Value` for the message, only on that rare path.
pub(super) type Raw<'a> = Json<'a, Box<Value>>;

impl<'de> Container<'de> for Box<Value> {
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Box::new)
    }
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Box::new)
    }
}

impl Raw<'_> {
    /// Compact JSON for a message (as a `Value` prints it), clipped, with
    /// anything that could break the line or fool a terminal escaped.
    pub(super) fn render(&self) -> String {
        let json = match self {
            Json::Null => Ok("null".to_owned()),
            Json::Bool(b) => Ok(b.to_string()),
            Json::Number(n) => serde_json::to_string(n),
            Json::String(s) => serde_json::to_string(s),
            Json::Array(v) | Json::Object(v) => serde_json::to_string(v),
        };
        let json = json.unwrap_or_else(|_| "?".to_owned());
        let mut out = String::new();
        for c in clip(&json).chars() {
            if c.is_ascii_graphic() || c == ' ' || c == '…' {
                out.push(c);
            } else {
                out.extend(c.escape_debug());
            }
        }
        out
    }
}

/// The top level: records, each gone to `each` in order, repeated
/// keys included (a repeated key is two records, so both get held); or
/// the kind of anything else.
pub(super) enum Top {
    Records,
    Other(&'static str),
}

/// An object's key.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

struct TopSeed<F>(F);

impl<'de, F> DeserializeSeed<'de> for TopSeed<F>
where
    F: FnMut(usize, Option<&str>, Json<'de, Fields<'de>>),
{
    type Value = Top;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Top, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, F> Visitor<'de> for TopSeed<F>
where
    F: FnMut(usize, Option<&str>, Json<'de, Fields<'de>>),
{
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Top, E> {
        Ok(Top::Other(Json::<Skip>::Null.kind()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other(Json::<Skip>::Bool(false).kind()))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other(Json::<Skip>::Number(0.into()).kind()))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other(Json::<Skip>::Number(0.into()).kind()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
        // Finite from serde_json.
        Ok(Top::Other(Json::<Skip>::Number(0.into()).kind()))
    }
    fn visit_str<E>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other(Json::<Skip>::String(Cow::Borrowed("")).kind()))
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Top, A::Error> {
        let mut n = 0;
        while let Some(rec) = seq.next_element()? {
            n += 1;
            (self.0)(n, None, rec);
        }
        Ok(Top::Records)
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Top, A::Error> {
        let mut n = 0;
        while let Some((Key(key), rec)) = map.next_entry()? {
            n += 1;
            (self.0)(n, Some(&key), rec);
        }
        Ok(Top::Records)
    }
}

/// A record's keys that bwmon reads, as given (none for an array).
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) name: Option<Raw<'a>>,
    pub(super) xid: Option<Raw<'a>>,
    pub(super) effective: Option<Json<'a, Keys<'a>>>,
    pub(super) rspec: Option<Json<'a, Keys<'a>>>,
}

impl<'de> Container<'de> for Fields<'de> {
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Skip::seq(seq).map(|_| Fields::default())
    }
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut rec = Fields::default();
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "name" => rec.name = Some(map.next_value()?),
                "xid" => rec.xid = Some(map.next_value()?),
                "_rspec" => rec.effective = Some(map.next_value()?),
                "rspec" => rec.rspec = Some(map.next_value()?),
                _ => drop(map.next_value::<Json<Skip>>()?),
            }
        }
        Ok(rec)
    }
}

/// An rspec's values of the [`KEYS`], as given (none for an array).
#[derive(Default)]
pub(super) struct Keys<'a>(pub(super) Box<[Option<Raw<'a>>; KEYS.len()]>);

impl<'de> Container<'de> for Keys<'de> {
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Skip::seq(seq).map(|_| Keys::default())
    }
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut keys = Keys::default();
        while let Some(Key(key)) = map.next_key()? {
            match KEYS.iter().position(|k| *k == key) {
                Some(i) => keys.0[i] = Some(map.next_value()?),
                None => drop(map.next_value::<Json<Skip>>()?),
            }
        }
        Ok(keys)
    }
}
