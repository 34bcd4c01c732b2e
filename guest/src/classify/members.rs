//! The members of a token-endpoint body that RFC 6749 §5.1 and §5.2 give
//! a meaning, read in one pass without building a map of the whole object.
//!
//! Why not `serde_json::Value`: a map of owned keys and values is built
//! only to look five members up, and allocation dominates classifying a
//! response inside the component. The rules stay the ones a parsed object
//! would give: the body must be one valid JSON object (nesting limited as
//! for any value), unknown members are checked and skipped, and when a name
//! repeats the last value counts, as it would in a map.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

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
}

impl<'a> Members<'a> {
    /// The members of `body`, or `None` when it is not one JSON object.
    pub fn parse(body: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }
}

/// One member's value, as far as the rules look at it.
#[derive(Default)]
pub(super) enum Member<'a> {
    /// Not in the object.
    #[default]
    Absent,
    Null,
    String(Cow<'a, str>),
    /// An integer from 0 to `u64::MAX`.
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

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Members::default();
        while let Some(name) = map.next_key::<Name>()? {
            let slot = match name {
                Name::AccessToken => &mut members.access_token,
                Name::TokenType => &mut members.token_type,
                Name::ExpiresIn => &mut members.expires_in,
                Name::RefreshToken => &mut members.refresh_token,
                Name::Scope => &mut members.scope,
                Name::Error => &mut members.error,
                Name::ErrorDescription => &mut members.error_description,
                Name::Other => {
                    map.next_value::<Skip>()?;
                    continue;
                }
            };
            *slot = map.next_value()?;
        }
        Ok(members)
    }
}

/// A member name, matched without allocating (escapes already decoded).
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
        deserializer.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl Visitor<'_> for NameVisitor {
    type Value = Name;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Name, E> {
        Ok(match name {
            "access_token" => Name::AccessToken,
            "token_type" => Name::TokenType,
            "expires_in" => Name::ExpiresIn,
            "refresh_token" => Name::RefreshToken,
            "scope" => Name::Scope,
            "error" => Name::Error,
            "error_description" => Name::ErrorDescription,
            _ => Name::Other,
        })
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

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Member::Other)
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Member::String(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Member::String(Cow::Owned(text.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_seq(seq).map(|Skip| Member::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        SkipVisitor.visit_map(map).map(|Skip| Member::Other)
    }
}

/// Any JSON value, checked and dropped. It goes through `deserialize_any`
/// (not `IgnoredAny`), so the parser's nesting limit and number checks
/// apply as they would to a `serde_json::Value`.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever `serde_json::Value` makes of a body, `Members` agrees:
    /// whether it is an object, and each member's value.
    #[test]
    fn members_agree_with_a_parsed_object() {
        let deep = format!("{{\"x\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let bodies = [
            r#"{"access_token":"a","token_type":"Bearer","expires_in":3600}"#,
            r#"{"access_token":"a\"b","expires_in":-1,"scope":null}"#,
            r#"{"expires_in":3600.0,"refresh_token":["x"],"scope":{"a":1}}"#,
            r#"{"error":"invalid_grant","error":"server_error"}"#,
            r#"{"acc\u0065ss_token":"escaped name","x":[1,{"y":[null,true]}]}"#,
            r#"{"expires_in":18446744073709551615,"token_type":false}"#,
            r#"{"expires_in":18446744073709551616}"#,
            r#"{"x":1e400}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"a":1} trailing"#,
            r#"[{"access_token":"a"}]"#,
            r#""text""#,
            "",
            "{",
            &deep,
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
                    (Some(v), Member::Unsigned(n)) => v.as_u64() == Some(*n),
                    (Some(v), Member::Other) => {
                        !v.is_null() && !v.is_string() && v.as_u64().is_none()
                    }
                    _ => false,
                };
                assert!(same, "{body}: {name}");
            }
        }
    }
}
