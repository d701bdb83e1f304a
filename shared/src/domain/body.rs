//! One reading of a JSON body for both functions, so that whatever the
//! ingest accepts, the consumer can parse.
//!
//! `serde_json` skips values it does not build (the ingest's probe) more
//! leniently than it builds them (the consumer): a lone `\u` surrogate escape,
//! a number beyond `f64` (`1e400`) and nesting deeper than its recursion limit
//! pass the probe and then fail the full parse. Such bodies are real (a reply
//! preview cut in the middle of an emoji by the sender), so instead of
//! refusing them both sides read the body through [`tolerant`], which
//! rewrites only those spots:
//!
//! | in the body | in the parsed view |
//! |---|---|
//! | a lone surrogate escape (`"\ud83d"`) | U+FFFD, the replacement character |
//! | a number too large for `f64` (`1e400`) | the number's text, as a string (`"1e400"`) |
//! | an array or object nested deeper than [`MAX_DEPTH`] | its JSON text, as a string |
//!
//! Everything else is left byte for byte, and a body that needs no rewrite
//! is not copied. The raw bytes themselves are never changed: the SQS
//! message and the S3 claim check keep what SmartLead sent. [`MAX_DEPTH`]
//! is also what DynamoDB can store (32 levels), so no parsed value is too
//! deep for the state table.

use std::borrow::Cow;

/// Deepest nesting of arrays and objects kept as structure (the top-level
/// object is level 1).
pub const MAX_DEPTH: usize = 32;

/// The body with lone surrogates, out-of-range numbers and over-deep values
/// rewritten as described in the module docs; borrowed when nothing needs it.
///
/// It does not validate: malformed JSON stays malformed (and a truncated
/// string or escape is left as it is) for `serde_json` to report.
pub fn tolerant(input: &[u8]) -> Cow<'_, [u8]> {
    if !needs_rewrite(input) {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() + 16);
    let mut copied = 0; // input[..copied] is in `out` already
    let mut depth = 0usize;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'"' => {
                let end = string_end(input, i);
                rewrite_string(input, i, end, &mut out, &mut copied);
                i = end;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let end = value_end(input, i);
                    out.extend_from_slice(&input[copied..i]);
                    let text = String::from_utf8_lossy(&input[i..end]);
                    // A JSON string literal: serializing a &str cannot fail.
                    out.extend_from_slice(
                        serde_json::to_string(text.as_ref())
                            .unwrap_or_default()
                            .as_bytes(),
                    );
                    copied = end;
                    depth -= 1;
                    i = end;
                } else {
                    i += 1;
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let end = number_end(input, i);
                let text = &input[i..end];
                if overflows(text) {
                    out.extend_from_slice(&input[copied..i]);
                    out.push(b'"');
                    out.extend_from_slice(text);
                    out.push(b'"');
                    copied = end;
                }
                i = end.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out.extend_from_slice(&input[copied..]);
    Cow::Owned(out)
}

/// A cheap first look: can anything in `input` need a rewrite? (Only bodies
/// with a `\u` escape of a surrogate, a number with an exponent or many
/// digits, or deep nesting do.)
fn needs_rewrite(input: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut digits = 0usize;
    let mut in_string = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if in_string {
            match b {
                b'\\' => {
                    if input.get(i + 1) == Some(&b'u')
                        && input
                            .get(i + 2)
                            .is_some_and(|c| c.eq_ignore_ascii_case(&b'd'))
                    {
                        return true;
                    }
                    i += 2;
                    continue;
                }
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return true;
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                b'e' | b'E' if digits > 0 => return true,
                b'0'..=b'9' => {
                    digits += 1;
                    // f64 overflows only past ~309 digits.
                    if digits > 300 {
                        return true;
                    }
                    i += 1;
                    continue;
                }
                _ => {}
            }
            digits = 0;
        }
        i += 1;
    }
    false
}

/// Index just past the string starting at `start` (a `"`), or the end of
/// input for an unterminated one.
fn string_end(input: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < input.len() {
        match input[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    input.len()
}

/// Index just past the array or object starting at `start`.
fn value_end(input: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < input.len() {
        match input[i] {
            b'"' => {
                i = string_end(input, i);
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    input.len()
}

fn number_end(input: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < input.len() && matches!(input[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
        i += 1;
    }
    i
}

/// True for a well-formed number that `f64` cannot hold (serde_json refuses
/// it). Malformed ones are left for serde_json to report.
fn overflows(text: &[u8]) -> bool {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .is_some_and(|f| f.is_infinite())
}

fn hex4(input: &[u8], at: usize) -> Option<u16> {
    let h = input.get(at..at + 4)?;
    let s = std::str::from_utf8(h).ok()?;
    u16::from_str_radix(s, 16).ok()
}

/// Replaces each lone surrogate escape inside the string `input[start..end]`
/// with `\ufffd`.
fn rewrite_string(input: &[u8], start: usize, end: usize, out: &mut Vec<u8>, copied: &mut usize) {
    let mut i = start + 1;
    while i + 1 < end {
        if input[i] != b'\\' {
            i += 1;
            continue;
        }
        if input[i + 1] != b'u' {
            i += 2;
            continue;
        }
        let Some(unit) = hex4(input, i + 2) else {
            i += 2;
            continue;
        };
        let len = 6;
        let paired = (0xD800..0xDC00).contains(&unit)
            && input.get(i + 6) == Some(&b'\\')
            && input.get(i + 7) == Some(&b'u')
            && hex4(input, i + 8).is_some_and(|lo| (0xDC00..0xE000).contains(&lo));
        if paired {
            i += 12;
        } else if (0xD800..0xE000).contains(&unit) {
            out.extend_from_slice(&input[*copied..i]);
            out.extend_from_slice(b"\\ufffd");
            *copied = i + len;
            i += len;
        } else {
            i += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(s: &str) -> Value {
        serde_json::from_slice(&tolerant(s.as_bytes())).expect("parses")
    }

    #[test]
    fn clean_bodies_are_not_copied() {
        for s in [
            r#"{"event_type":"EMAIL_OPEN","n":1.5e3,"e":"\u00e9 \ud83d\ude00"}"#,
            r#"{"a":[[[1]]],"b":-0.25}"#,
        ] {
            let out = tolerant(s.as_bytes());
            assert_eq!(out.as_ref(), s.as_bytes());
        }
        assert!(matches!(
            tolerant(br#"{"a":[1,2,{"b":"x"}]}"#),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn lone_surrogates_become_the_replacement_character() {
        let v = parse(r#"{"preview":"Sounds good \ud83d","x":"\udc00 and \ud83d\ude00"}"#);
        assert_eq!(v["preview"], "Sounds good \u{fffd}");
        assert_eq!(v["x"], "\u{fffd} and \u{1F600}");
        // A high surrogate followed by a non-surrogate escape.
        let v = parse(r#"{"a":"\ud800\u0041"}"#);
        assert_eq!(v["a"], "\u{fffd}A");
        // An escaped backslash before `u` is not an escape.
        let v = parse(r#"{"a":"\\ud800"}"#);
        assert_eq!(v["a"], "\\ud800");
    }

    #[test]
    fn numbers_past_f64_become_their_text() {
        let v = parse(r#"{"a":1e400,"b":-1E+999,"c":1e-400,"d":12}"#);
        assert_eq!(v["a"], "1e400");
        assert_eq!(v["b"], "-1E+999");
        assert_eq!(v["c"], 0.0);
        assert_eq!(v["d"], 12);
        let long = format!(r#"{{"a":{}}}"#, "9".repeat(400));
        assert_eq!(parse(&long)["a"], "9".repeat(400));
    }

    #[test]
    fn deep_nesting_is_kept_as_text_below_the_limit() {
        let deep = format!(
            r#"{{"event_type":"X","d":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let v = parse(&deep);
        let mut cur = &v["d"];
        let mut levels = 1; // the top-level object
        while let Value::Array(a) = cur {
            levels += 1;
            cur = &a[0];
        }
        assert_eq!(levels, MAX_DEPTH);
        let text = cur.as_str().expect("the rest as text");
        assert!(text.starts_with("[[") && text.ends_with("]]"));
        assert_eq!(text.len(), 2 * (200 - (MAX_DEPTH - 1)) + 1);
    }

    #[test]
    fn malformed_json_stays_malformed() {
        for s in ["{", r#"{"a":"\ud8"#, r#"{"a":1e}"#, r#"{"a":"x"#, "[[[["] {
            assert!(
                serde_json::from_slice::<Value>(&tolerant(s.as_bytes())).is_err(),
                "{s}"
            );
        }
    }
}
