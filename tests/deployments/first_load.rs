//! The first load after a restart, against what the store kept: a broken file that declares its
//! own id.

use promptd::deployments::Status;

use crate::{model_of, row, yaml, Fixture};

const BROKEN_YAML: &str = "provider: openai\nmodel: 'unterminated\n";

#[test]
fn a_broken_file_with_its_own_id_serves_its_stored_version_after_a_restart() {
    let mut fx = Fixture::new();
    let path = fx.write(
        "support.yaml",
        &format!("id: support-reply\n{}", yaml("good")),
    );
    drop(fx.registry());
    fx.write("support.yaml", &format!("id: support-reply\n{BROKEN_YAML}"));
    fx.reopen_db();

    let registry = fx.registry();
    assert_eq!(
        model_of(&registry, "support-reply").as_deref(),
        Some("good")
    );
    assert!(registry.get("support").is_none());
    let r = row(&registry, &path).expect("row");
    assert_eq!(r.id, "support-reply");
    assert_eq!(
        (r.status, r.serving, r.version),
        (Status::Error, true, Some(1))
    );

    // Later reloads (the watcher's path) keep it, and so does the store for the next start.
    let report = registry.reload_all();
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(
        model_of(&registry, "support-reply").as_deref(),
        Some("good")
    );
    drop(registry);
    fx.reopen_db();
    let registry = fx.registry();
    assert_eq!(
        model_of(&registry, "support-reply").as_deref(),
        Some("good")
    );
}
