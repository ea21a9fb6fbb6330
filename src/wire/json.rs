//! A client's JSON body forwarded as it came, but for the few top-level members a gateway must
//! set ([`rewrite_members`]; [`member`] reads one as it came): every other member's bytes are copied untouched, in their order,
//! so nothing a provider signs or caches on (thinking signatures, prompt-cache prefixes) is
//! re-encoded. [`from_bytes`] is how a JSON body is read.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// `body` decoded as `serde_json::from_slice` decodes it (the same value, the same error), its
/// UTF-8 checked once for the whole body: serde_json checks each string of a byte slice as it
/// reads it (~100 instructions a string, some 40 strings in a small completion) and none of a
/// `&str`. Every JSON body promptd reads on a request's way — clients' and providers' — is
/// read through here.
pub fn from_bytes<'a, T: Deserialize<'a>>(body: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        // Not UTF-8: serde_json's own error, with its line and column.
        Err(_) => serde_json::from_slice(body),
    }
}

/// The top-level members of a JSON object, each value's bytes as they came.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// `body` (a JSON object) with the members named in `drop` left out and member `set.0` given
/// the value `set.1` (a JSON text; added at the end when the body has none); every other member
/// as it came, in its order. A body that is not a JSON object is an error.
pub fn rewrite_members(
    body: &[u8],
    drop: &[&str],
    set: (&str, &str),
) -> Result<Vec<u8>, serde_json::Error> {
    let Members(members) = from_bytes(body)?;
    let mut out = Vec::with_capacity(body.len() + set.1.len());
    out.push(b'{');
    let mut set_done = false;
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, key: &str, value: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        // A key is a string: it always serialises.
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        out.extend_from_slice(value.as_bytes());
    };
    for (key, value) in &members {
        if drop.contains(&key.as_ref()) {
            continue;
        }
        if key == set.0 {
            if !set_done {
                member(&mut out, key, set.1);
                set_done = true;
            }
            continue;
        }
        member(&mut out, key, value.get());
    }
    if !set_done {
        member(&mut out, set.0, set.1);
    }
    out.push(b'}');
    Ok(out)
}

/// The bytes of top-level member `key` of `body` (a JSON object), as they came: the last one
/// when the key repeats (as serde reads an object), `None` when absent.
pub fn member<'a>(body: &'a [u8], key: &str) -> Result<Option<&'a RawValue>, serde_json::Error> {
    let Members(members) = from_bytes(body)?;
    Ok(members
        .into_iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_decode_as_serde_jsons_from_slice_value_and_error_alike() {
        let bodies: [&[u8]; 6] = [
            b"{\"a\":\"h\\u00e9llo\",\"b\":[1,2.5,null],\"c\":{\"d\":\"\xc3\xa9\"}}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":1,}",
            b"\xef\xbb\xbf{}",
            b"",
            b"{\"a\":\"\\ud800\"}",
        ];
        for body in bodies {
            let ours = from_bytes::<serde_json::Value>(body).map_err(|e| e.to_string());
            let theirs =
                serde_json::from_slice::<serde_json::Value>(body).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(body));
        }
    }

    fn rewrite(body: &str, model: &str) -> String {
        let model = serde_json::to_string(model).expect("a string");
        String::from_utf8(
            rewrite_members(body.as_bytes(), &["stream"], ("model", &model)).expect("an object"),
        )
        .expect("utf-8")
    }

    #[test]
    fn members_keep_their_bytes_and_order() {
        let body = r#"{ "model" : "claude-x", "stream":true,
            "messages":[{"role":"user","content":"h\u00e9 \"q\""}], "temperature": 1.0e0,
            "thinking": {"type":"enabled","budget_tokens":1024} }"#;
        assert_eq!(
            rewrite(body, "local/m"),
            r#"{"model":"local/m","messages":[{"role":"user","content":"h\u00e9 \"q\""}],"temperature":1.0e0,"thinking":{"type":"enabled","budget_tokens":1024}}"#
        );
        assert_eq!(rewrite(r#"{"a":1}"#, "m"), r#"{"a":1,"model":"m"}"#);
        assert_eq!(rewrite("{}", "m"), r#"{"model":"m"}"#);
        let escaped_key = r#"{"mod\u0065l":"x","model":"y"}"#;
        assert_eq!(rewrite(escaped_key, "m"), r#"{"model":"m"}"#, "one model");
        assert!(rewrite_members(b"[1]", &["stream"], ("model", "\"m\"")).is_err());
        assert!(rewrite_members(b"{\"a\":", &["stream"], ("model", "\"m\"")).is_err());
    }

    #[test]
    fn a_member_is_found_as_it_came() {
        let body = br#"{"input" : [ {"a":1} ],"model":"m","model":"n"}"#;
        let input = member(body, "input").expect("an object").expect("there");
        assert_eq!(input.get(), r#"[ {"a":1} ]"#);
        assert_eq!(
            member(body, "model").expect("ok").map(|v| v.get()),
            Some(r#""n""#)
        );
        assert!(member(body, "stream").expect("ok").is_none());
        assert!(member(b"[1]", "input").is_err());
    }
}
