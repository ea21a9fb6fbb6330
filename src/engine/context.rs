//! What the server knows of a request beyond its body, handed to the engine with it: who sent
//! it (the Unix-socket peer's uid and gid from `SO_PEERCRED`, or a TCP client's address) and
//! by which route. It reaches the log record (its `metadata`), so every record says whose it
//! is; quotas per client will hang on it.

use std::net::SocketAddr;

use serde_json::{Map, Value};

/// Who is on the other end of the request's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A local process on the Unix socket.
    Unix { uid: u32, gid: u32 },
    /// A client of the loopback TCP listener, by its address.
    Tcp { peer: SocketAddr },
}

/// A request's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCtx {
    pub client: Client,
    /// The route's fixed name (the `route` label of request metrics).
    pub route: &'static str,
}

impl RequestCtx {
    /// Note the client and route in a record's `metadata` (keys prefixed `promptd_`, values as
    /// text as Parea's metadata holds them); a client's own keys of those names are kept.
    pub fn note_in(&self, metadata: &mut Map<String, Value>) {
        let mut note = |key: &str, value: String| {
            metadata
                .entry(key.to_owned())
                .or_insert_with(|| Value::String(value));
        };
        match self.client {
            Client::Unix { uid, gid } => {
                note("promptd_uid", uid.to_string());
                note("promptd_gid", gid.to_string());
            }
            Client::Tcp { peer } => note("promptd_tcp_peer", peer.to_string()),
        }
        note("promptd_route", self.route.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_and_route_are_noted_without_overwriting() {
        let ctx = RequestCtx {
            client: Client::Unix {
                uid: 1000,
                gid: 100,
            },
            route: "completion",
        };
        let mut metadata = Map::new();
        metadata.insert("promptd_gid".into(), "mine".into());
        ctx.note_in(&mut metadata);
        assert_eq!(metadata["promptd_uid"], "1000");
        assert_eq!(metadata["promptd_gid"], "mine");
        assert_eq!(metadata["promptd_route"], "completion");
        let tcp = RequestCtx {
            client: Client::Tcp {
                peer: "127.0.0.1:5000".parse().expect("addr"),
            },
            route: "openai_chat_completions",
        };
        let mut metadata = Map::new();
        tcp.note_in(&mut metadata);
        assert_eq!(metadata["promptd_tcp_peer"], "127.0.0.1:5000");
        assert!(!metadata.contains_key("promptd_uid"));
    }
}
