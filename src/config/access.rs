//! Who may do what: the admin uids of the Unix socket, and what guards the loopback TCP
//! listener against web pages (its accepted `Host` names) and other local users (its key).
//!
//! The TCP listener answers anyone who can reach the address: every local user, and — through a
//! browser on this machine — any web page (a cross-origin `fetch`, or DNS rebinding that makes a
//! foreign name resolve to 127.0.0.1). The server refuses a request whose `Host` is not a
//! loopback name or one of [`AccessConfig::tcp_hosts`], one with a foreign `Origin`, and a
//! non-JSON body on a JSON route; `tcp_key_env` adds a bearer key for sharing the listener.

use super::{invalid, ConfigError, Secret};

/// The validated access keys.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// Uids that may use the admin routes over the Unix socket; empty means the daemon's own
    /// uid and root.
    pub admin_uids: Vec<u32>,
    /// Host names (without port) accepted in `Host` and `Origin` on the TCP listener besides
    /// the loopback ones (`localhost`, `*.localhost`, 127.0.0.0/8, `::1`).
    pub tcp_hosts: Vec<String>,
    /// The key every TCP request must carry (`Authorization: Bearer KEY` or `x-api-key: KEY`),
    /// read from the variable `tcp_key_env` names; `None`: no key is asked.
    pub tcp_key: Option<Secret>,
    /// The variable the key came from, for messages and `/status`.
    pub tcp_key_env: Option<String>,
}

/// Shortest TCP key accepted: a key a local user could guess is no key.
const MIN_TCP_KEY: usize = 16;

impl AccessConfig {
    /// Check the raw keys; the key variable is read from the environment through `env`.
    pub fn from_raw(
        admin_uids: Option<Vec<u32>>,
        tcp_hosts: Option<Vec<String>>,
        tcp_key_env: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AccessConfig, ConfigError> {
        let tcp_hosts = tcp_hosts
            .unwrap_or_default()
            .into_iter()
            .map(|host| {
                let lower = host.trim().to_ascii_lowercase();
                let valid = !lower.is_empty()
                    && lower.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    });
                if valid {
                    Ok(lower)
                } else {
                    Err(invalid(
                        "tcp_hosts",
                        format!(
                            "`{host}` is not a host name (write it without scheme, port or path)"
                        ),
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        let tcp_key = match &tcp_key_env {
            None => None,
            Some(var) if var.is_empty() => {
                return Err(invalid(
                    "tcp_key_env",
                    "is empty; name the variable that holds the key, or remove the key",
                ))
            }
            Some(var) => match env(var) {
                None => {
                    return Err(invalid(
                        "tcp_key_env",
                        format!(
                            "the variable {var} is not set (or empty): without it the TCP \
                             listener would be open to every local user; set it in promptd's \
                             environment"
                        ),
                    ))
                }
                Some(key) if key.len() < MIN_TCP_KEY => {
                    return Err(invalid(
                        "tcp_key_env",
                        format!(
                            "the key in {var} is {} characters; use at least {MIN_TCP_KEY} \
                             (e.g. `openssl rand -hex 24`)",
                            key.len()
                        ),
                    ))
                }
                Some(key) => Some(Secret::new(key)),
            },
        };
        Ok(AccessConfig {
            admin_uids: admin_uids.unwrap_or_default(),
            tcp_hosts,
            tcp_key,
            tcp_key_env,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "GOOD" => Some("0123456789abcdef0123".to_owned()),
            "SHORT" => Some("abc".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn a_key_variable_must_be_set_and_long() {
        let ok = AccessConfig::from_raw(None, None, Some("GOOD".into()), env).expect("good");
        assert_eq!(
            ok.tcp_key.as_ref().map(Secret::expose),
            Some("0123456789abcdef0123")
        );
        for (var, says) in [("UNSET", "not set"), ("SHORT", "at least"), ("", "empty")] {
            let err = AccessConfig::from_raw(None, None, Some(var.into()), env)
                .expect_err(var)
                .to_string();
            assert!(err.contains("tcp_key_env") && err.contains(says), "{err}");
        }
        let none = AccessConfig::from_raw(None, None, None, env).expect("none");
        assert!(none.tcp_key.is_none());
    }

    #[test]
    fn hosts_are_bare_names() {
        let ok = AccessConfig::from_raw(None, Some(vec!["Promptd.Internal".into()]), None, env)
            .expect("host");
        assert_eq!(ok.tcp_hosts, ["promptd.internal"]);
        let err = AccessConfig::from_raw(None, Some(vec!["http://x/".into()]), None, env)
            .expect_err("url")
            .to_string();
        assert!(err.contains("tcp_hosts"), "{err}");
    }
}
