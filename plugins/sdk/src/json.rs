//! Just enough JSON for the ABI's payload: a strict parser that decodes
//! readings straight from the bytes, and a writer. Integers are parsed as
//! integers, so a 64-bit entity id survives intact.

use std::io::Write;

use crate::{Reading, Value};

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("invalid input JSON at byte {}: {}", self.i, what))
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Checks and steps over a value the decoder does not keep (a field
    /// it does not know), without building anything from it.
    fn skip(&mut self, depth: u32) -> Result<(), String> {
        if depth > 64 {
            return self.err("nested too deeply");
        }
        self.ws();
        let (open, close) = match self.s.get(self.i) {
            Some(b'{') => (b'{', b'}'),
            Some(b'[') => (b'[', b']'),
            Some(b'"') => return self.string().map(drop),
            Some(b't') => return self.word("true"),
            Some(b'f') => return self.word("false"),
            Some(b'n') => return self.word("null"),
            Some(b'-') | Some(b'0'..=b'9') => {
                return match self.number_text().parse::<f64>() {
                    Ok(_) => Ok(()),
                    Err(_) => self.err("bad number"),
                };
            }
            _ => return self.err("expected a value"),
        };
        self.i += 1;
        if self.eat(close) {
            return Ok(());
        }
        loop {
            if open == b'{' {
                self.ws();
                self.string()?;
                if !self.eat(b':') {
                    return self.err("expected ':'");
                }
            }
            self.skip(depth + 1)?;
            if self.eat(close) {
                return Ok(());
            }
            if !self.eat(b',') {
                return self.err(if open == b'{' {
                    "expected ',' or '}'"
                } else {
                    "expected ',' or ']'"
                });
            }
        }
    }

    /// The characters a number may have, unchecked; callers parse them.
    fn number_text(&mut self) -> &'a str {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(
                self.s[self.i],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }

    fn word(&mut self, w: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(())
        } else {
            self.err("bad literal")
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i] != b'"' && self.s[self.i] != b'\\' {
                self.i += 1;
            }
            match std::str::from_utf8(&self.s[start..self.i]) {
                Ok(chunk) => out.push_str(chunk),
                Err(_) => return self.err("string is not UTF-8"),
            }
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc = self.s.get(self.i + 1).copied();
                    self.i += 2;
                    match esc {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .and_then(|h| std::str::from_utf8(h).ok());
                            let code = match hex.and_then(|h| u32::from_str_radix(h, 16).ok()) {
                                Some(c) => c,
                                None => return self.err("bad \\u escape"),
                            };
                            self.i += 4;
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                _ => return self.err("unterminated string"),
            }
        }
    }
}

/// A value as the reading decoder sees it: what it keeps, or what it skipped.
enum Field {
    Number(f64, Option<i64>),
    Str(String),
    Bool(bool),
    Other,
}

impl<'a> Parser<'a> {
    /// An object key, compared in place unless it holds escapes.
    fn key(&mut self) -> Result<std::borrow::Cow<'a, str>, String> {
        self.ws();
        if self.s.get(self.i) == Some(&b'"') {
            let start = self.i + 1;
            let mut end = start;
            while end < self.s.len() && self.s[end] != b'"' && self.s[end] != b'\\' {
                end += 1;
            }
            if self.s.get(end) == Some(&b'"') {
                if let Ok(k) = std::str::from_utf8(&self.s[start..end]) {
                    self.i = end + 1;
                    return Ok(std::borrow::Cow::Borrowed(k));
                }
            }
        }
        self.string().map(std::borrow::Cow::Owned)
    }

    /// A reading's field value, decoded straight into what the reading
    /// keeps: no intermediate tree, no copies of numbers.
    fn field(&mut self) -> Result<Field, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'"') => self.string().map(Field::Str),
            Some(b'-') | Some(b'0'..=b'9') => {
                let text = self.number_text();
                // Integers (every entity id) skip the costlier float parse.
                if let Ok(i) = text.parse::<i64>() {
                    return Ok(Field::Number(i as f64, Some(i)));
                }
                match text.parse::<f64>() {
                    Ok(f) => Ok(Field::Number(f, None)),
                    Err(_) => self.err("bad number"),
                }
            }
            Some(b't') => self.word("true").map(|_| Field::Bool(true)),
            Some(b'f') => self.word("false").map(|_| Field::Bool(false)),
            _ => self.skip(2).map(|_| Field::Other),
        }
    }

    fn reading(&mut self) -> Result<Reading, String> {
        if !self.eat(b'{') {
            return Err("each reading must be an object".into());
        }
        let (mut entity_id, mut entity_type, mut attribute, mut value, mut ts) =
            (None, None, None, None, None);
        let mut bad_id = None;
        if !self.eat(b'}') {
            loop {
                let key = self.key()?;
                if !self.eat(b':') {
                    return self.err("expected ':'");
                }
                let text = |f: Field, name: &str| match f {
                    Field::Str(s) => Ok(Some(s)),
                    Field::Other => Ok(None),
                    _ => Err(format!("{} must be a string", name)),
                };
                match &*key {
                    "entity_id" => match self.field()? {
                        Field::Number(_, Some(i)) => entity_id = Some(i),
                        Field::Number(f, None) => bad_id = Some(f),
                        _ => {}
                    },
                    "attribute" => attribute = text(self.field()?, "attribute")?,
                    "entity_type" => entity_type = text(self.field()?, "entity_type")?,
                    "ts" => ts = text(self.field()?, "ts")?,
                    "value" => {
                        value = match self.field()? {
                            Field::Number(_, Some(i)) => Some(Value::Int(i)),
                            Field::Number(f, None) => Some(Value::Float(f)),
                            Field::Bool(b) => Some(Value::Bool(b)),
                            Field::Str(s) => Some(Value::Str(s)),
                            Field::Other => None,
                        }
                    }
                    _ => {
                        self.skip(2)?;
                    }
                }
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return self.err("expected ',' or '}'");
                }
            }
        }
        let entity_id = match (entity_id, bad_id) {
            (Some(id), _) => id,
            (None, Some(f)) => return Err(format!("entity_id {} is not an integer", f)),
            (None, None) => return Err("reading without a numeric entity_id".into()),
        };
        let attribute = attribute.ok_or("reading without an attribute")?;
        let value = value.ok_or_else(|| format!("reading of {} has no usable value", attribute))?;
        Ok(Reading {
            entity_id,
            entity_type,
            attribute,
            value,
            ts,
        })
    }
}

pub(crate) fn decode_batch(input: &[u8]) -> Result<Vec<Reading>, String> {
    let mut p = Parser { s: input, i: 0 };
    if !p.eat(b'{') {
        return p.err("expected an object");
    }
    let mut readings = None;
    if !p.eat(b'}') {
        loop {
            let key = p.key()?;
            if !p.eat(b':') {
                return p.err("expected ':'");
            }
            if key == "readings" {
                if !p.eat(b'[') {
                    return Err("input has no readings array".into());
                }
                let mut items = Vec::new();
                if !p.eat(b']') {
                    loop {
                        items.push(p.reading()?);
                        if p.eat(b']') {
                            break;
                        }
                        if !p.eat(b',') {
                            return p.err("expected ',' or ']'");
                        }
                    }
                }
                readings = Some(items);
            } else {
                p.skip(1)?;
            }
            if p.eat(b'}') {
                break;
            }
            if !p.eat(b',') {
                return p.err("expected ',' or '}'");
            }
        }
    }
    p.ws();
    if p.i != input.len() {
        return p.err("trailing data");
    }
    readings.ok_or_else(|| "input has no readings array".into())
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

pub(crate) fn encode_batch(readings: &[Reading], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"readings\":[");
    for (i, r) in readings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "{{\"entity_id\":{}", r.entity_id);
        if let Some(t) = &r.entity_type {
            out.extend_from_slice(b",\"entity_type\":");
            string(t, out);
        }
        out.extend_from_slice(b",\"attribute\":");
        string(&r.attribute, out);
        out.extend_from_slice(b",\"value\":");
        match &r.value {
            Value::Int(i) => {
                let _ = write!(out, "{}", i);
            }
            // JSON has no NaN or infinity; null makes the host refuse the reading.
            Value::Float(f) if f.is_finite() => {
                let _ = write!(out, "{:?}", f);
            }
            Value::Float(_) => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Str(s) => string(s, out),
        }
        if let Some(ts) = &r.ts {
            out.extend_from_slice(b",\"ts\":");
            string(ts, out);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

pub(crate) fn encode_error(message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"error\":");
    string(message, out);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip() {
        let input = br#"{"readings":[{"entity_id":9007199254740993,"entity_type":"device","attribute":"temperature","value":72.5,"ts":"2026-11-24T10:00:00Z"},
                         {"entity_id":1,"attribute":"note","value":"a \"quoted\" \u00e9\n"},{"entity_id":2,"attribute":"on","value":true},{"entity_id":3,"attribute":"n","value":-4}]}"#;
        let readings = decode_batch(input).unwrap();
        assert_eq!(
            readings[0].entity_id, 9_007_199_254_740_993,
            "64-bit ids survive"
        );
        assert_eq!(readings[0].value, Value::Float(72.5));
        assert_eq!(readings[1].value, Value::Str("a \"quoted\" é\n".into()));
        assert_eq!(readings[2].value, Value::Bool(true));
        assert_eq!(readings[3].value, Value::Int(-4));
        let mut out = Vec::new();
        encode_batch(&readings, &mut out);
        assert_eq!(decode_batch(&out).unwrap(), readings);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"readings\":5}",
            b"{\"readings\":[{\"attribute\":\"a\"}]}",
            b"{\"readings\":[]} x",
            b"\"\\u12\"",
        ] {
            assert!(
                decode_batch(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn unknown_fields_are_checked_and_skipped() {
        let ok = br#"{"meta":[true,"x",-1.5e3],"readings":[{"entity_id":1,"extra":{"a":[1,{"b":null}]},"attribute":"a","value":2}]}"#;
        assert_eq!(decode_batch(ok).unwrap()[0].attribute, "a");
        for bad in [
            &br#"{"readings":[{"entity_id":1,"extra":{"a":]},"attribute":"a","value":2}]}"#[..],
            br#"{"meta":[1 2],"readings":[]}"#,
            br#"{"meta":nul,"readings":[]}"#,
        ] {
            assert!(
                decode_batch(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn what_is_not_json_says_where() {
        for bad in [&b"not json"[..], b"[1]", b"", b"{\"readings\":[{\"a\" 1}]}"] {
            let e = decode_batch(bad).unwrap_err();
            assert!(e.starts_with("invalid input JSON at byte "), "{}", e);
        }
    }

    #[test]
    fn errors_are_json() {
        let mut out = Vec::new();
        encode_error("bad \"x\"", &mut out);
        assert_eq!(out, br#"{"error":"bad \"x\""}"#);
    }
}
