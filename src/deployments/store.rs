//! Deployments persisted in the `deployments` sled tree, so the last good prompts serve after a
//! restart even when the prompts directory is gone, and upstream fetches survive an outage.
//!
//! Keys (UTF-8 prefix + id):
//! - `file/{id}`: a deployment loaded from the prompts directory, removed with its file (at
//!   start-up too, when the file was deleted while the daemon was down). The value holds the
//!   file's path: the registry finds a broken file's last good copy by that path, as a file
//!   may declare any id;
//! - `upstream/{id}`: a deployment fetched from the upstream Parea API, with its expiry;
//! - `version/{id}`: the version counter, `(content hash, version)`: the same content keeps
//!   its version, new content gets the previous version + 1. Kept when the file is deleted,
//!   so an id that comes back keeps counting up.
//!
//! Values are one format byte ([`FORMAT_V1`]) then a bincode 2 body (standard config, with a
//! size limit so a corrupt length cannot allocate gigabytes). bincode cannot encode
//! `serde_json::Value`, so model params, functions and function_call are stored as JSON text.
//! An entry of an unknown format, or one that does not decode, is skipped with a warning —
//! never a panic; the next successful load overwrites it.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::deployment::{ContentHash, Deployment, DeploymentContent, DeploymentMessage, Source};
use crate::call::Role;

/// The format byte of every value written by this version of promptd.
pub const FORMAT_V1: u8 = 1;

/// Upper bound of a decoded value: a prompt file is at most 1 MiB (`scan::MAX_FILE_BYTES`), and
/// its stored form is about as large.
const DECODE_LIMIT: usize = 8 * 1024 * 1024;

const FILE_PREFIX: &str = "file/";
const UPSTREAM_PREFIX: &str = "upstream/";
const VERSION_PREFIX: &str = "version/";

/// A store operation that failed (sled I/O or encoding). Callers log it and keep serving.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("deployment store: {0}")]
    Sled(#[from] sled::Error),
    #[error("deployment store: cannot encode {id}: {message}")]
    Encode { id: String, message: String },
}

#[derive(Serialize, Deserialize)]
struct StoredV1 {
    id: String,
    name: String,
    provider: String,
    model: String,
    model_params_json: String,
    messages: Vec<(Role, String)>,
    functions_json: String,
    function_call_json: Option<String>,
    version: u64,
    source: StoredSource,
    content_hash: [u8; 32],
    /// Milliseconds since the Unix epoch; only upstream entries expire.
    expires_at_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
enum StoredSource {
    /// Path bytes (paths need not be UTF-8).
    File(Vec<u8>),
    Upstream {
        base_url: String,
        fetched_at_ms: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct StoredVersion {
    content_hash: [u8; 32],
    version: u64,
}

/// An upstream deployment read back from the store.
#[derive(Debug, Clone)]
pub struct CachedUpstream {
    pub deployment: Deployment,
    pub expires_at: SystemTime,
}

/// The `deployments` tree.
#[derive(Clone)]
pub struct Store {
    tree: sled::Tree,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn encode<T: Serialize>(id: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![FORMAT_V1];
    let body = bincode::serde::encode_to_vec(value, config()).map_err(|e| StoreError::Encode {
        id: id.to_owned(),
        message: e.to_string(),
    })?;
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Decode a value; `Err` says why it is skipped.
fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => bincode::serde::decode_from_slice(body, config())
            .map(|(value, _)| value)
            .map_err(|e| format!("undecodable entry: {e}")),
        Some((format, _)) => Err(format!("unknown format version {format}")),
        None => Err("empty entry".to_owned()),
    }
}

fn to_stored(d: &Deployment, expires_at: Option<SystemTime>) -> Result<StoredV1, StoreError> {
    let json = |what: &str, r: serde_json::Result<String>| {
        r.map_err(|e| StoreError::Encode {
            id: d.id.clone(),
            message: format!("{what}: {e}"),
        })
    };
    Ok(StoredV1 {
        id: d.id.clone(),
        name: d.name.clone(),
        provider: d.provider.clone(),
        model: d.model.clone(),
        model_params_json: json("model_params", serde_json::to_string(&d.model_params))?,
        messages: d.messages.iter().map(|m| (m.role, m.raw.clone())).collect(),
        functions_json: json("functions", serde_json::to_string(&d.functions))?,
        function_call_json: d
            .function_call
            .as_ref()
            .map(|f| json("function_call", serde_json::to_string(f)))
            .transpose()?,
        version: d.version,
        source: match &d.source {
            Source::File(path) => StoredSource::File(path.as_os_str().as_bytes().to_vec()),
            Source::Upstream {
                base_url,
                fetched_at,
            } => StoredSource::Upstream {
                base_url: base_url.clone(),
                fetched_at_ms: millis(*fetched_at),
            },
        },
        content_hash: d.content_hash.0,
        expires_at_ms: expires_at.map(millis),
    })
}

fn from_stored(s: StoredV1) -> Result<(Deployment, Option<SystemTime>), String> {
    let messages = s
        .messages
        .into_iter()
        .map(|(role, raw)| DeploymentMessage::new(role, raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("stored template no longer compiles: {e}"))?;
    let bad = |what: &str, e: serde_json::Error| format!("stored {what} is not valid: {e}");
    let deployment = Deployment {
        content: DeploymentContent {
            model_params: serde_json::from_str(&s.model_params_json)
                .map_err(|e| bad("model_params", e))?,
            functions: serde_json::from_str(&s.functions_json).map_err(|e| bad("functions", e))?,
            function_call: s
                .function_call_json
                .map(|f| serde_json::from_str(&f))
                .transpose()
                .map_err(|e| bad("function_call", e))?,
            id: s.id,
            name: s.name,
            provider: s.provider,
            model: s.model,
            messages,
        },
        version: s.version,
        source: match s.source {
            StoredSource::File(bytes) => {
                Source::File(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
            }
            StoredSource::Upstream {
                base_url,
                fetched_at_ms,
            } => Source::Upstream {
                base_url,
                fetched_at: from_millis(fetched_at_ms),
            },
        },
        content_hash: ContentHash(s.content_hash),
    };
    Ok((deployment, s.expires_at_ms.map(from_millis)))
}

impl Store {
    pub fn new(tree: sled::Tree) -> Store {
        Store { tree }
    }

    /// Every readable `file/` entry. Unreadable ones are skipped with a warning.
    pub fn load_files(&self) -> Vec<Deployment> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(FILE_PREFIX) {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    tracing::warn!("deployment store: cannot read: {e}");
                    break;
                }
            };
            let key = String::from_utf8_lossy(&key).into_owned();
            match decode::<StoredV1>(&value).and_then(from_stored) {
                Ok((deployment, _)) => out.push(deployment),
                Err(why) => tracing::warn!("deployment store: skipping `{key}`: {why}"),
            }
        }
        out
    }

    /// The upstream copy of `id`, fresh or stale; `None` when absent or unreadable.
    pub fn get_upstream(&self, id: &str) -> Option<CachedUpstream> {
        let key = format!("{UPSTREAM_PREFIX}{id}");
        let value = match self.tree.get(&key) {
            Ok(value) => value?,
            Err(e) => {
                tracing::warn!("deployment store: cannot read `{key}`: {e}");
                return None;
            }
        };
        match decode::<StoredV1>(&value).and_then(from_stored) {
            Ok((deployment, expires_at)) => Some(CachedUpstream {
                deployment,
                expires_at: expires_at.unwrap_or(UNIX_EPOCH),
            }),
            Err(why) => {
                tracing::warn!("deployment store: skipping `{key}`: {why}");
                None
            }
        }
    }

    pub fn put_upstream(&self, d: &Deployment, expires_at: SystemTime) -> Result<(), StoreError> {
        let value = encode(&d.id, &to_stored(d, Some(expires_at))?)?;
        self.tree
            .insert(format!("{UPSTREAM_PREFIX}{}", d.id), value)?;
        Ok(())
    }

    /// The version counter of `id`: the content hash and version last assigned.
    pub fn counter(&self, id: &str) -> Result<Option<(ContentHash, u64)>, StoreError> {
        let key = format!("{VERSION_PREFIX}{id}");
        let Some(value) = self.tree.get(&key)? else {
            return Ok(None);
        };
        match decode::<StoredVersion>(&value) {
            Ok(v) => Ok(Some((ContentHash(v.content_hash), v.version))),
            Err(why) => {
                tracing::warn!("deployment store: skipping `{key}`: {why}");
                Ok(None)
            }
        }
    }

    /// Apply `batch` atomically and make it durable (one fsync). An empty batch costs nothing.
    pub fn apply(&self, batch: StoreBatch) -> Result<(), StoreError> {
        if batch.len == 0 {
            return Ok(());
        }
        self.tree.apply_batch(batch.batch)?;
        self.tree.flush()?;
        Ok(())
    }
}

/// The writes of one reload, applied together by [`Store::apply`]: a reload is persisted
/// whole or not at all, with one fsync however many files changed.
#[derive(Default)]
pub struct StoreBatch {
    batch: sled::Batch,
    len: usize,
}

impl StoreBatch {
    pub fn put_file(&mut self, d: &Deployment) -> Result<(), StoreError> {
        let value = encode(&d.id, &to_stored(d, None)?)?;
        self.batch
            .insert(format!("{FILE_PREFIX}{}", d.id).as_bytes(), value);
        self.len += 1;
        Ok(())
    }

    pub fn remove_file(&mut self, id: &str) {
        self.batch.remove(format!("{FILE_PREFIX}{id}").as_bytes());
        self.len += 1;
    }

    pub fn set_counter(
        &mut self,
        id: &str,
        hash: ContentHash,
        version: u64,
    ) -> Result<(), StoreError> {
        let value = encode(
            id,
            &StoredVersion {
                content_hash: hash.0,
                version,
            },
        )?;
        self.batch
            .insert(format!("{VERSION_PREFIX}{id}").as_bytes(), value);
        self.len += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::ModelParams;
    use crate::deployments::deployment::DeploymentContent;

    fn tree() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path().join("db")).expect("sled");
        let tree = db.open_tree("deployments").expect("tree");
        (dir, tree)
    }

    fn deployment(id: &str) -> Deployment {
        DeploymentContent {
            id: id.into(),
            name: id.into(),
            provider: "openai".into(),
            model: "m".into(),
            model_params: ModelParams {
                response_format: Some(serde_json::json!({"type": "json_object"})),
                ..ModelParams::default()
            },
            messages: vec![DeploymentMessage::new(Role::User, "hi {{x}}".into()).expect("ok")],
            functions: vec![serde_json::json!({"name": "f"})],
            function_call: None,
        }
        .into_deployment(4, Source::File("/p/a.yaml".into()))
    }

    #[test]
    fn round_trips_and_skips_unknown_formats() {
        let (_dir, tree) = tree();
        let store = Store::new(tree.clone());
        let d = deployment("a");
        let mut batch = StoreBatch::default();
        batch.put_file(&d).expect("put");
        batch.put_file(&deployment("gone")).expect("put");
        batch.remove_file("gone");
        store.apply(batch).expect("apply");
        tree.insert("file/future", vec![99u8, 1, 2, 3])
            .expect("insert");
        tree.insert(
            "file/garbage",
            vec![FORMAT_V1, 0xff, 0xff, 0xff, 0xff, 0xff],
        )
        .expect("insert");
        tree.insert("file/empty", Vec::<u8>::new()).expect("insert");
        let loaded = store.load_files();
        assert_eq!(loaded, vec![d]);
    }

    #[test]
    fn counters_and_upstream_entries_round_trip() {
        let (_dir, tree) = tree();
        let store = Store::new(tree);
        let d = deployment("a");
        assert!(store.counter("a").expect("read").is_none());
        let mut batch = StoreBatch::default();
        batch.set_counter("a", d.content_hash, 7).expect("set");
        store.apply(batch).expect("apply");
        assert_eq!(store.counter("a").expect("read"), Some((d.content_hash, 7)));
        let expires = UNIX_EPOCH + Duration::from_millis(1_000_000);
        store.put_upstream(&d, expires).expect("put");
        let cached = store.get_upstream("a").expect("cached");
        assert_eq!(cached.deployment, d);
        assert_eq!(cached.expires_at, expires);
        assert!(store.get_upstream("b").is_none());
    }
}
