//! What the server knows of a request beyond its body, handed to the engine with it: who sent
//! it (the Unix-socket peer's uid and gid from `SO_PEERCRED`, or a TCP client's address) and
//! by which route. It reaches the log record (its `metadata`), so every record says whose it
//! is; quotas per client will hang on it.

use std::net::SocketAddr;

use crate::logs::{NoteValue, Notes};

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
    /// The client and route as notes for the request's log record (`metadata` keys prefixed
    /// `promptd_`, values as text as Parea's metadata holds them; a client's own keys of those
    /// names are kept).
    pub fn notes(&self) -> Notes<'static> {
        let mut notes = Notes::default();
        match self.client {
            Client::Unix { uid, gid } => {
                notes.add("promptd_uid", NoteValue::Number(uid));
                notes.add("promptd_gid", NoteValue::Number(gid));
            }
            Client::Tcp { peer } => notes.add("promptd_tcp_peer", NoteValue::Address(peer)),
        }
        notes.add("promptd_route", NoteValue::Text(self.route));
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_and_route_are_noted() {
        let ctx = RequestCtx {
            client: Client::Unix {
                uid: 1000,
                gid: 100,
            },
            route: "completion",
        };
        let notes = ctx.notes();
        assert_eq!(notes.text("promptd_uid").as_deref(), Some("1000"));
        assert_eq!(notes.text("promptd_gid").as_deref(), Some("100"));
        assert_eq!(notes.text("promptd_route").as_deref(), Some("completion"));
        let tcp = RequestCtx {
            client: Client::Tcp {
                peer: "127.0.0.1:5000".parse().expect("addr"),
            },
            route: "openai_chat_completions",
        };
        let notes = tcp.notes();
        assert_eq!(
            notes.text("promptd_tcp_peer").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(notes.text("promptd_uid"), None);
    }
}
