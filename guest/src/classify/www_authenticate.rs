//! A `WWW-Authenticate` parser (RFC 9110 §11.2, §11.6.1; RFC 6750 §3).
//!
//! Hand-written because no small, maintained crate parses the full grammar
//! (several challenges per line, token68, quoted-pair escapes, empty list
//! elements) with typed errors and without panics on hostile input.

/// Most bytes accepted across all values of the field.
pub const MAX_FIELD_BYTES: usize = 16_384;
/// Most challenges accepted in one field.
pub const MAX_CHALLENGES: usize = 64;
/// Most parameters accepted in one challenge.
pub const MAX_PARAMS: usize = 64;

/// Joins field lines, as a recipient may (RFC 9110 §5.3).
const SEPARATOR: &str = ", ";

/// One authentication parameter; the name is lowercase.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuthParam {
    pub name: String,
    pub value: String,
}

/// What follows the scheme.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeData {
    Token68(String),
    Params(Vec<AuthParam>),
}

/// One challenge; the scheme is lowercase.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Challenge {
    pub scheme: String,
    pub data: ChallengeData,
}

impl Challenge {
    /// The value of parameter `name` (lowercase), if the challenge has it.
    pub fn param(&self, name: &str) -> Option<&str> {
        match &self.data {
            ChallengeData::Params(params) => params
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.value.as_str()),
            ChallengeData::Token68(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeErrorKind {
    TooLarge,
    ExpectedScheme,
    UnexpectedCharacter,
    ExpectedValue,
    UnterminatedQuotedString,
    /// RFC 9110 §11.2: each parameter name occurs once per challenge. Either
    /// value could be an attacker's, so the field is rejected.
    DuplicateParameter,
}

/// Where parsing failed: the value (0-based) and the byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ChallengeError {
    pub kind: ChallengeErrorKind,
    pub value_index: u32,
    pub offset: u32,
}

/// Parses every field line of `WWW-Authenticate`, in order.
///
/// The lines are parsed as if joined with commas (RFC 9110 §5.3), so
/// challenges may be spread over lines. Empty list elements are skipped
/// (RFC 9110 §5.6.1). Schemes and parameter names come back in lowercase.
pub fn www_authenticate<S: AsRef<str>>(values: &[S]) -> Result<Vec<Challenge>, ChallengeError> {
    let too_large = |starts: &[usize]| locate(starts, values, ChallengeErrorKind::TooLarge, 0);
    // One line (the usual case) is parsed where it is, not copied.
    let mut joined = String::new();
    let (input, starts) = match values {
        [value] if value.as_ref().len() > MAX_FIELD_BYTES => return Err(too_large(&[0])),
        [value] => (value.as_ref(), vec![0]),
        _ => {
            let mut starts = Vec::with_capacity(values.len());
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    joined.push_str(SEPARATOR);
                }
                starts.push(joined.len());
                joined.push_str(value.as_ref());
                if joined.len() > MAX_FIELD_BYTES {
                    return Err(too_large(&starts));
                }
            }
            (joined.as_str(), starts)
        }
    };
    Parser {
        text: input,
        pos: 0,
    }
    .challenges()
    .map_err(|(kind, pos)| locate(&starts, values, kind, pos))
}

/// Maps an offset in the joined text back to a value and an offset in it.
fn locate<S: AsRef<str>>(
    starts: &[usize],
    values: &[S],
    kind: ChallengeErrorKind,
    pos: usize,
) -> ChallengeError {
    let index = starts.iter().rposition(|&start| start <= pos).unwrap_or(0);
    let (start, len) = match (starts.get(index), values.get(index)) {
        (Some(&start), Some(value)) => (start, value.as_ref().len()),
        _ => (0, 0),
    };
    ChallengeError {
        kind,
        value_index: u32::try_from(index).unwrap_or(u32::MAX),
        offset: u32::try_from((pos - start).min(len)).unwrap_or(u32::MAX),
    }
}

type Parsed<T> = Result<T, (ChallengeErrorKind, usize)>;

/// Positions only ever stop before an ASCII byte or at the end, which are
/// character boundaries, so slices of `text` need no UTF-8 check.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    /// `#challenge`, with empty elements allowed.
    fn challenges(mut self) -> Parsed<Vec<Challenge>> {
        let mut challenges = Vec::new();
        loop {
            self.skip_empty_elements();
            if self.at_end() {
                return Ok(challenges);
            }
            if challenges.len() == MAX_CHALLENGES {
                return Err((ChallengeErrorKind::TooLarge, self.pos));
            }
            let scheme = self
                .token()
                .ok_or((ChallengeErrorKind::ExpectedScheme, self.pos))?
                .to_ascii_lowercase();
            let data = self.challenge_data()?;
            challenges.push(Challenge { scheme, data });
        }
    }

    /// `[ 1*SP ( token68 / #auth-param ) ]` after a scheme. Leaves the
    /// position at the end of the input or at the comma that ends the
    /// challenge.
    fn challenge_data(&mut self) -> Parsed<ChallengeData> {
        let after_scheme = self.pos;
        self.skip_ows();
        if self.at_end() {
            return Ok(ChallengeData::Params(Vec::new()));
        }
        if self.peek() == Some(b',') {
            // After `1*SP`, a list of parameters may begin with empty
            // elements (RFC 9110 §5.6.1.2: `Bearer , error="..."`); a
            // comma followed by anything else ends the challenge.
            let comma = self.pos;
            self.skip_empty_elements();
            if comma == after_scheme || self.at_end() || !self.param_follows() {
                self.pos = comma;
                return Ok(ChallengeData::Params(Vec::new()));
            }
        } else if self.pos == after_scheme {
            return Err((ChallengeErrorKind::UnexpectedCharacter, self.pos));
        } else if let Some(token68) = self.token68() {
            return Ok(ChallengeData::Token68(token68));
        }
        let mut params: Vec<AuthParam> = Vec::new();
        loop {
            let name_pos = self.pos;
            let param = self.auth_param()?;
            if params.iter().any(|p| p.name == param.name) {
                return Err((ChallengeErrorKind::DuplicateParameter, name_pos));
            }
            if params.len() == MAX_PARAMS {
                return Err((ChallengeErrorKind::TooLarge, name_pos));
            }
            params.push(param);
            self.skip_ows();
            if self.at_end() {
                break;
            }
            if self.peek() != Some(b',') {
                return Err((ChallengeErrorKind::UnexpectedCharacter, self.pos));
            }
            // After the comma: another parameter of this challenge, or the
            // scheme of the next one (a token not followed by `=`).
            let comma = self.pos;
            self.skip_empty_elements();
            if self.at_end() || !self.param_follows() {
                self.pos = comma;
                break;
            }
        }
        Ok(ChallengeData::Params(params))
    }

    /// `token68` when it is the whole challenge data, else `None` with the
    /// position unchanged.
    fn token68(&mut self) -> Option<String> {
        let start = self.pos;
        let mut end = start;
        let input = self.text.as_bytes();
        while end < input.len() && is_token68_char(input[end]) {
            end += 1;
        }
        if end == start {
            return None;
        }
        while end < input.len() && input[end] == b'=' {
            end += 1;
        }
        self.pos = end;
        self.skip_ows();
        if self.at_end() || self.peek() == Some(b',') {
            Some(self.text[start..end].to_owned())
        } else {
            self.pos = start;
            None
        }
    }

    /// Whether the input at the position is `token BWS "="`.
    fn param_follows(&mut self) -> bool {
        let start = self.pos;
        let follows = self.token().is_some() && {
            self.skip_ows();
            self.peek() == Some(b'=')
        };
        self.pos = start;
        follows
    }

    /// `auth-param = token BWS "=" BWS ( token / quoted-string )`.
    fn auth_param(&mut self) -> Parsed<AuthParam> {
        let name = self
            .token()
            .ok_or((ChallengeErrorKind::UnexpectedCharacter, self.pos))?
            .to_ascii_lowercase();
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Err((ChallengeErrorKind::UnexpectedCharacter, self.pos));
        }
        self.pos += 1;
        self.skip_ows();
        let value = match self.peek() {
            Some(b'"') => self.quoted_string()?,
            _ => self
                .token()
                .ok_or((ChallengeErrorKind::ExpectedValue, self.pos))?
                .to_owned(),
        };
        Ok(AuthParam { name, value })
    }

    /// `quoted-string`, unescaped (RFC 9110 §5.6.4).
    fn quoted_string(&mut self) -> Parsed<String> {
        let open = self.pos;
        self.pos += 1;
        // Without escapes (the usual case) the value is the text as it is.
        let rest = &self.text.as_bytes()[self.pos..];
        if let Some(len) = rest.iter().position(|&b| !is_qdtext(b))
            && rest[len] == b'"'
        {
            let value = self.text[self.pos..self.pos + len].to_owned();
            self.pos += len + 1;
            return Ok(value);
        }
        let mut value = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err((ChallengeErrorKind::UnterminatedQuotedString, open));
            };
            self.pos += 1;
            match byte {
                b'"' => break,
                b'\\' => match self.peek() {
                    Some(escaped) if escaped == b'\t' || escaped >= b' ' && escaped != 0x7f => {
                        value.push(escaped);
                        self.pos += 1;
                    }
                    Some(_) => return Err((ChallengeErrorKind::UnexpectedCharacter, self.pos)),
                    None => return Err((ChallengeErrorKind::UnterminatedQuotedString, open)),
                },
                byte if is_qdtext(byte) => value.push(byte),
                _ => return Err((ChallengeErrorKind::UnexpectedCharacter, self.pos - 1)),
            }
        }
        // Removing the ASCII backslashes of a UTF-8 input leaves UTF-8; the
        // lossy conversion is only a guard.
        Ok(String::from_utf8(value)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// `token = 1*tchar`, or `None` with the position unchanged.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        let text: &'a str = self.text;
        (self.pos > start).then(|| &text[start..self.pos])
    }

    /// `OWS = *( SP / HTAB )`.
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Commas and whitespace between list elements (RFC 9110 §5.6.1.2).
    fn skip_empty_elements(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(byte: u8) -> bool {
    TCHAR[usize::from(byte)]
}

const TCHAR: [bool; 256] = alphanumeric_and(b"!#$%&'*+-.^_`|~");

/// The ASCII letters and digits and the bytes of `extra`, as a table: one
/// load per byte in the parser's loops, where searching `extra` would call
/// `memchr`.
const fn alphanumeric_and(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

/// `qdtext` (RFC 9110 §5.6.4): what a quoted string holds unescaped.
fn is_qdtext(byte: u8) -> bool {
    matches!(byte, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// The characters of `token68` before its trailing `=` (RFC 9110 §11.2).
fn is_token68_char(byte: u8) -> bool {
    TOKEN68[usize::from(byte)]
}

const TOKEN68: [bool; 256] = alphanumeric_and(b"-._~+/");

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ChallengeData {
        ChallengeData::Params(
            pairs
                .iter()
                .map(|(n, v)| AuthParam {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        )
    }

    fn challenge(scheme: &str, data: ChallengeData) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            data,
        }
    }

    #[test]
    fn rfc6750_3_example() {
        let parsed = www_authenticate(&[
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        ])
        .unwrap();
        assert_eq!(
            parsed,
            [challenge(
                "bearer",
                params(&[
                    ("realm", "example"),
                    ("error", "invalid_token"),
                    ("error_description", "The access token expired")
                ])
            )]
        );
    }

    #[test]
    fn rfc9110_11_6_1_several_challenges_and_token68() {
        let parsed = www_authenticate(&[
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
        ])
        .unwrap();
        assert_eq!(
            parsed,
            [
                challenge(
                    "newauth",
                    params(&[
                        ("realm", "apps"),
                        ("type", "1"),
                        ("title", "Login to \"apps\"")
                    ])
                ),
                challenge("basic", params(&[("realm", "simple")])),
            ]
        );
        let parsed = www_authenticate(&["Negotiate abc+/=, , BEARER"]).unwrap();
        assert_eq!(
            parsed,
            [
                challenge("negotiate", ChallengeData::Token68("abc+/=".into())),
                challenge("bearer", params(&[]))
            ]
        );
    }

    /// RFC 9110 §5.6.4: `obs-text` (bytes 0x80-0xFF) is allowed in a
    /// quoted string, so UTF-8 text comes back whole, escaped or not, and a
    /// non-ASCII character ends a token without splitting it.
    #[test]
    fn rfc9110_5_6_4_non_ascii_text_in_quoted_strings() {
        let parsed = www_authenticate(&[
            r#"Bearer realm="bücher", error_description="Zugriff \"verweigert\" 🔒""#,
        ])
        .unwrap();
        assert_eq!(
            parsed,
            [challenge(
                "bearer",
                params(&[
                    ("realm", "bücher"),
                    ("error_description", r#"Zugriff "verweigert" 🔒"#)
                ])
            )]
        );
        let error = www_authenticate(&["Bearer realm=bücher"]).unwrap_err();
        assert_eq!(error.kind, ChallengeErrorKind::UnexpectedCharacter);
        assert_eq!(error.offset, 14, "at the first byte of `ü`");
    }

    #[test]
    fn errors_are_located_in_the_right_value() {
        let error = www_authenticate(&["Basic", r#"Bearer error="x"#]).unwrap_err();
        assert_eq!(
            error,
            ChallengeError {
                kind: ChallengeErrorKind::UnterminatedQuotedString,
                value_index: 1,
                offset: 13
            }
        );
        let error = www_authenticate(&[r#"Bearer a=1, A=2"#]).unwrap_err();
        assert_eq!(error.kind, ChallengeErrorKind::DuplicateParameter);
        assert_eq!(error.offset, 12);
    }
}
