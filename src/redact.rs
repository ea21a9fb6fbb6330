//! Credentials out of text that leaves the daemon: a `base_url` may carry them
//! (`http://user:PASS@host/v1`), and URLs end up in error messages (to clients, in shipped
//! records, in the daemon's log), `/status` and the CLI. Keys a provider echoes are masked by
//! [`crate::config::mask_keys`]; this masks the user information of every URL in a text.

use std::borrow::Cow;

/// What a URL's user information (`user:password@`) becomes.
pub const MASKED_USERINFO: &str = "***";

/// `text` with the user information of every `scheme://user:pass@host` in it replaced by
/// [`MASKED_USERINFO`] (the user name too: it may be a token).
pub fn urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority: up to the path, query, fragment or the end of the URL in prose.
        let end = after
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`' | ')' | ']'
                ) || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                out.push_str(MASKED_USERINFO);
                out.push_str(&authority[userinfo_end..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_masked_wherever_a_url_is() {
        assert_eq!(
            urls("cannot reach provider p at http://user:PASS@host:8080/v1: refused"),
            "cannot reach provider p at http://***@host:8080/v1: refused"
        );
        assert_eq!(urls("https://TOKEN@h/x"), "https://***@h/x");
        assert_eq!(
            urls("a (http://u:p@a/) and \"https://v:q@b\""),
            "a (http://***@a/) and \"https://***@b\""
        );
        assert_eq!(urls("http://u:p:@:x@host/"), "http://***@host/");
    }

    #[test]
    fn text_without_credentials_is_untouched() {
        for text in [
            "http://host/v1 mail me@example.com",
            "no urls",
            "http://127.0.0.1:1/v1",
            "ssh://host then user@other",
        ] {
            assert!(matches!(urls(text), Cow::Borrowed(_)), "{text}");
        }
    }
}
