//! The members of a token-endpoint body that RFC 6749 §5.1 and §5.2 give
//! a meaning, read in one pass without building a map of the whole object.
//!
//! Why not `serde_json::Value`: a map of owned keys and values is built
//! only to look five members up, and allocation dominates classifying a
//! response inside the component. The body must be one JSON object, and
//! when a name repeats the last value counts, as it would in a map.
//!
//! What the classifier does not read cannot make a body unusable. On a
//! refresh the server has already rotated the refresh token, so refusing a
//! body whose tokens are fine loses the grant. So a leading byte order mark
//! is ignored (RFC 8259 §8.1 allows it), member names are compared as bytes,
//! and the values of other members, and of members that are not strings or
//! numbers, are checked for syntax only: a number beyond `f64`, a lone
//! surrogate escape (which RFC 8259 §8.2 leaves to the implementation) or
//! deep nesting there is skipped like any other value. Skipping is
//! iterative, and bodies are at most 64 KiB, so nesting costs no stack.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The members the classifier reads; every other member is skipped.
#[derive(Debug, Default)]
pub(super) struct Members<'a> {
    pub access_token: Member<'a>,
    pub token_type: Member<'a>,
    pub expires_in: Member<'a>,
    pub refresh_token: Member<'a>,
    pub scope: Member<'a>,
    pub error: Member<'a>,
    pub error_description: Member<'a>,
    /// `error` appeared more than once: the last counts, but the server
    /// said two things, and a verdict that discards tokens is not taken on
    /// an ambiguous answer (RFC 8259 §4: names SHOULD be unique).
    pub repeated_error: bool,
}

impl<'a> Members<'a> {
    /// The members of `body`, or `None` when it is not one JSON object.
    ///
    /// A describing member (`expires_in`, `scope`, `error_description`)
    /// whose value cannot be decoded (a number beyond `f64`, a lone
    /// surrogate, bytes that are not UTF-8) must not cost the tokens, nor
    /// the judgement of an `error` code, either: a second reading skips
    /// them, checked for syntax only, and marks them invalid.
    pub fn parse(body: &'a [u8]) -> Option<Self> {
        let body = without_bom(body);
        Self::read(body, false).or_else(|| Self::read(body, true))
    }

    fn read(body: &'a [u8], skip_describing: bool) -> Option<Self> {
        let mut reader = serde_json::Deserializer::from_slice(body);
        let members = (&mut reader)
            .deserialize_map(MembersVisitor { skip_describing })
            .ok()?;
        reader.end().ok()?;
        Some(members)
    }
}

/// Whether `body` is one JSON value in every part, as a strict parser
/// would read it: UTF-8 strings with paired surrogates, numbers within
/// `f64`, nesting within serde_json's limit. A verdict that discards tokens
/// needs this; the verdicts that keep them do not ([`Members`]).
pub(super) fn well_formed(body: &[u8]) -> bool {
    serde_json::from_slice::<Strict>(without_bom(body)).is_ok()
}

/// RFC 8259 §8.1: a parser may ignore a byte order mark.
fn without_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// One member's value, as far as the rules look at it.
#[derive(Default)]
pub(super) enum Member<'a> {
    /// Not in the object.
    #[default]
    Absent,
    Null,
    String(Cow<'a, str>),
    /// A number with an integral value from 0 to `u64::MAX`, however it is
    /// written: `3600`, `3600.0` and `3.6e3` are the same number (RFC 8259 §6
    /// has one number type).
    Unsigned(u64),
    /// A boolean, an array, an object, or any other number.
    Other,
}

impl Member<'_> {
    /// The value, unless absent or `null` (some servers send `null` for
    /// "not given").
    pub fn present(&self) -> Option<&Self> {
        match self {
            Member::Absent | Member::Null => None,
            value => Some(value),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Member::String(text) => Some(text),
            _ => None,
        }
    }
}

/// Values may be tokens: never printed.
impl fmt::Debug for Member<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Member::Absent => "Absent",
            Member::Null => "Null",
            Member::String(_) => "String([redacted])",
            Member::Unsigned(_) => "Unsigned",
            Member::Other => "Other",
        })
    }
}

struct MembersVisitor {
    /// Skip `expires_in`, `scope` and `error_description`, marked invalid
    /// ([`Members::parse`]).
    skip_describing: bool,
}

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Members::default();
        while let Some(name) = map.next_key::<Name>()? {
            let skip = self.skip_describing
                && matches!(name, Name::ExpiresIn | Name::Scope | Name::ErrorDescription);
            let slot = match name {
                Name::AccessToken => &mut members.access_token,
                Name::TokenType => &mut members.token_type,
                Name::ExpiresIn => &mut members.expires_in,
                Name::RefreshToken => &mut members.refresh_token,
                Name::Scope => &mut members.scope,
                Name::Error => {
                    members.repeated_error |= !matches!(members.error, Member::Absent);
                    &mut members.error
                }
                Name::ErrorDescription => &mut members.error_description,
                Name::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = if skip {
                map.next_value::<IgnoredAny>()?;
                Member::Other
            } else {
                map.next_value()?
            };
        }
        Ok(members)
    }
}

/// `value` as a `u64` when it is a whole number in range; the conversion is
/// then exact.
fn integral(value: f64) -> Option<u64> {
    const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;
    (value.fract() == 0.0 && (0.0..TWO_TO_64).contains(&value)).then_some(value as u64)
}

/// A member name, matched as bytes without allocating (escapes already
/// decoded; a name that is not UTF-8 is simply not one of ours).
enum Name {
    AccessToken,
    TokenType,
    ExpiresIn,
    RefreshToken,
    Scope,
    Error,
    ErrorDescription,
    Other,
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(NameVisitor)
    }
}

struct NameVisitor;

impl Visitor<'_> for NameVisitor {
    type Value = Name;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Name, E> {
        Ok(match name {
            b"access_token" => Name::AccessToken,
            b"token_type" => Name::TokenType,
            b"expires_in" => Name::ExpiresIn,
            b"refresh_token" => Name::RefreshToken,
            b"scope" => Name::Scope,
            b"error" => Name::Error,
            b"error_description" => Name::ErrorDescription,
            _ => Name::Other,
        })
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Name, E> {
        self.visit_bytes(name.as_bytes())
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Member::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Member::Other)
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Member::Unsigned(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(value).map_or(Member::Other, Member::Unsigned))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(integral(value).map_or(Member::Other, Member::Unsigned))
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Member::String(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Member::String(Cow::Owned(text.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|IgnoredAny| Member::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|IgnoredAny| Member::Other)
    }
}

/// Any JSON value, checked and dropped. It goes through `deserialize_any`
/// (not `IgnoredAny`), so strings are decoded and numbers and nesting
/// checked as they would be for a `serde_json::Value`.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `serde_json::Value` reads a body as an object, `Members`
    /// agrees on each member's value; where it refuses one, so does
    /// `Members`, except for what the next test lets through.
    #[test]
    fn members_agree_with_a_parsed_object() {
        let bodies = [
            r#"{"access_token":"a","token_type":"Bearer","expires_in":3600}"#,
            r#"{"access_token":"a\"b","expires_in":-1,"scope":null}"#,
            r#"{"expires_in":3600.0,"refresh_token":["x"],"scope":{"a":1}}"#,
            r#"{"expires_in":3.6e3,"scope":-0.0,"token_type":1.5}"#,
            r#"{"error":"invalid_grant","error":"server_error"}"#,
            r#"{"acc\u0065ss_token":"escaped name","x":[1,{"y":[null,true]}]}"#,
            r#"{"expires_in":18446744073709551615,"token_type":false}"#,
            r#"{"expires_in":18446744073709551616}"#,
            r#"{"a":1} trailing"#,
            r#"[{"access_token":"a"}]"#,
            r#""text""#,
            r#"{"access_token":"\ud800"}"#,
            r#"{"x":"\q"}"#,
            "{\"x\":\"\u{1}\"}",
            "",
            "{",
        ];
        for body in bodies {
            let value = serde_json::from_str::<serde_json::Value>(body).ok();
            let object = value.as_ref().and_then(|v| v.as_object());
            let members = Members::parse(body.as_bytes());
            assert_eq!(members.is_some(), object.is_some(), "{body}");
            let (Some(members), Some(object)) = (members, object) else {
                continue;
            };
            for (name, member) in [
                ("access_token", &members.access_token),
                ("token_type", &members.token_type),
                ("expires_in", &members.expires_in),
                ("refresh_token", &members.refresh_token),
                ("scope", &members.scope),
                ("error", &members.error),
                ("error_description", &members.error_description),
            ] {
                let same = match (object.get(name), member) {
                    (None, Member::Absent) => true,
                    (Some(serde_json::Value::Null), Member::Null) => true,
                    (Some(serde_json::Value::String(a)), Member::String(b)) => a == b,
                    (Some(v), Member::Unsigned(n)) => {
                        v.as_u64().or_else(|| v.as_f64().and_then(integral)) == Some(*n)
                    }
                    (Some(v), Member::Other) => {
                        !v.is_null() && !v.is_string() && v.as_f64().and_then(integral).is_none()
                    }
                    _ => false,
                };
                assert!(same, "{body}: {name}");
            }
        }
    }

    /// What the classifier does not read never makes a body unusable: a
    /// byte order mark (RFC 8259 §8.1), and in other members a number
    /// beyond `f64`, a lone surrogate (§8.2), bytes that are not UTF-8, or
    /// nesting deeper than a parsed value allows. A name that is not UTF-8
    /// is another member.
    #[test]
    fn rfc8259_what_is_not_read_is_only_checked_for_syntax() {
        let deep = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
        let bodies: [Vec<u8>; 7] = [
            b"\xEF\xBB\xBF{\"access_token\":\"at\"}".to_vec(),
            br#"{"x":1e400,"access_token":"at"}"#.to_vec(),
            br#"{"note":"\ud800","access_token":"at"}"#.to_vec(),
            b"{\"note\":\"\xff\xfe\",\"access_token\":\"at\"}".to_vec(),
            format!(r#"{{"x":{deep},"access_token":"at"}}"#).into_bytes(),
            format!(r#"{{"scope":{deep},"access_token":"at"}}"#).into_bytes(),
            b"{\"\xff\":1,\"\\udc00\":2,\"access_token\":\"at\"}".to_vec(),
        ];
        for body in &bodies {
            let members = Members::parse(body);
            let text = String::from_utf8_lossy(&body[..body.len().min(40)]);
            let members = members.unwrap_or_else(|| panic!("refused: {text}"));
            assert_eq!(members.access_token.as_str(), Some("at"), "{text}");
        }
        // A describing member that cannot be decoded is invalid, not a
        // reason to refuse the body.
        for body in [
            &br#"{"expires_in":1e400,"scope":"a:b","access_token":"at"}"#[..],
            br#"{"expires_in":"\udc00","access_token":"at"}"#,
            br#"{"scope":"\ud800","access_token":"at"}"#,
            b"{\"scope\":\"a\xff\",\"access_token\":\"at\"}",
            br#"{"access_token":"at","error_description":"\udc00"}"#,
            br#"{"error_description":1e400,"access_token":"at"}"#,
        ] {
            let text = String::from_utf8_lossy(body);
            let members = Members::parse(body).unwrap_or_else(|| panic!("refused: {text}"));
            assert_eq!(members.access_token.as_str(), Some("at"), "{text}");
            assert!(
                matches!(members.expires_in, Member::Other | Member::Absent),
                "{text}"
            );
            assert!(
                matches!(members.scope, Member::Other | Member::Absent),
                "{text}"
            );
        }
        // Nor is an undecodable `error_description` a reason to ignore the
        // `error` code beside it (RFC 6749 §5.2: the code is the verdict).
        for body in [
            &br#"{"error":"invalid_client","error_description":"\udc00"}"#[..],
            br#"{"error_description":1e400,"error":"invalid_client"}"#,
        ] {
            let text = String::from_utf8_lossy(body);
            let members = Members::parse(body).unwrap_or_else(|| panic!("refused: {text}"));
            assert_eq!(members.error.as_str(), Some("invalid_client"), "{text}");
            assert!(matches!(members.error_description, Member::Other), "{text}");
        }
        // Syntax is still checked where nothing is read.
        for body in [
            &br#"{"x":"\q","access_token":"at"}"#[..],
            br#"{"x":[1,],"access_token":"at"}"#,
            br#"{"x":01,"access_token":"at"}"#,
            b"\xEF\xBB\xBF\xEF\xBB\xBF{}",
        ] {
            assert!(
                Members::parse(body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
