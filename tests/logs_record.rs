//! Log records: built from a completion, the omit rules, trace-wide sampling, no keys, and the
//! versioned spool entry encoding.

use promptd::call::{Call, CompletionResponse};
use promptd::frontends::parea::CompletionRequest;
use promptd::logs::entry::{
    encode_json_text, encode_trace_log, EntryError, EntryKind, Feedback, SpoolEntry, StoredEntry,
    TraceLogUpdate,
};
use promptd::logs::record::{sampled_in, CallConfiguration, CompletionLog, LogRecord, OmitRules};
use promptd::logs::{CompletionRecord, NoteValue, Notes, TraceIntegration};
use serde_json::{json, Value};

fn request(extra: Value) -> Call {
    let mut body = json!({
        "llm_configuration": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "model_params": {"temp": 0.2, "max_length": 100},
            "messages": [{"role": "user", "content": "Hi {{name}}"}],
            "functions": [{"name": "f", "parameters": {}}],
            "function_call": "auto"
        },
        "llm_inputs": {"name": "Ada"},
        "provider_api_key": "sk-live-SECRET",
        "parent_trace_id": "parent-1",
        "root_trace_id": "root-1",
        "end_user_identifier": "user-7",
        "eval_metric_ids": [3, 4],
        "experiment_uuid": "exp-1",
        "metadata": {"team": "a"},
        "tags": ["t1"],
        "target": "Hello Ada",
        "project_uuid": "proj-uuid",
        "deployment_id": null,
        "log_sample_rate": 1.0
    });
    if let (Some(base), Value::Object(extra)) = (body.as_object_mut(), extra) {
        base.extend(extra);
    }
    serde_json::from_value::<CompletionRequest>(body)
        .expect("request decodes")
        .into_call()
        .expect("a call")
}

fn response() -> CompletionResponse {
    CompletionResponse {
        inference_id: "trace-1".into(),
        content: "Hello Ada!".into(),
        latency: 0.25,
        input_tokens: 12,
        output_tokens: 3,
        total_tokens: 15,
        cost: 0.0001,
        model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        cache_hit: false,
        status: "success".into(),
        start_timestamp: "2025-01-01T00:00:00Z".into(),
        end_timestamp: "2025-01-01T00:00:00.250Z".into(),
        error: None,
    }
}

/// The call a request's own `llm_configuration` describes (in the daemon, the resolved call).
fn call_of(req: &Call) -> CallConfiguration<'_> {
    let call = req.request.as_deref().expect("the request as the model");
    CallConfiguration {
        model: &call.request.model,
        provider: req.provider.as_deref().unwrap_or_default(),
        request: Some(&call.request),
    }
}

fn record_of(req: &Call, log: CompletionLog) -> Value {
    serde_json::to_value(LogRecord::from_completion(log, call_of(req), response()))
        .expect("serializes")
}

fn record_json(extra: Value) -> Value {
    let req = request(extra);
    let log = CompletionLog::from_call(&req, "trace-1");
    record_of(&req, log)
}

#[test]
fn a_completion_record_carries_request_and_answer_and_no_nulls() {
    let req = request(json!({}));
    let mut log = CompletionLog::from_call(&req, "trace-1");
    log.time_to_first_token = Some(0.05);
    let record = record_of(&req, log);
    let expected = json!({
        "trace_id": "trace-1",
        "parent_trace_id": "parent-1",
        "root_trace_id": "root-1",
        "trace_name": "llm-openai",
        "project_uuid": "proj-uuid",
        "start_timestamp": "2025-01-01T00:00:00Z",
        "end_timestamp": "2025-01-01T00:00:00.250Z",
        "configuration": {
            "model": "gpt-4o-mini",
            "provider": "openai",
            "model_params": {"temp": 0.2, "max_length": 100},
            "messages": [{"role": "user", "content": "Hi {{name}}"}],
            "functions": [{"name": "f", "parameters": {}}],
            "function_call": "auto"
        },
        "inputs": {"name": "Ada"},
        "output": "Hello Ada!",
        "target": "Hello Ada",
        "latency": 0.25,
        "time_to_first_token": 0.05,
        "input_tokens": 12,
        "output_tokens": 3,
        "total_tokens": 15,
        "cost": 0.0001,
        "status": "success",
        "cache_hit": false,
        "eval_metric_ids": [3, 4],
        "log_sample_rate": 1.0,
        "end_user_identifier": "user-7",
        "metadata": {"team": "a"},
        "tags": ["t1"],
        "experiment_uuid": "exp-1"
    });
    assert_eq!(record, expected);
}

/// The configuration is the call as the provider got it: unset params and turns without
/// content are left out (they say nothing), a function's schema is kept as given, a response
/// format is the structure it asks for.
#[test]
fn unset_params_and_contentless_turns_are_left_out_and_schemas_are_kept() {
    let record = record_json(json!({
        "llm_configuration": {
            "model": "m",
            "provider": "openai",
            "model_params": {"top_p": 0.5, "response_format": {"type": "json_object", "default": null}},
            "messages": [{"role": "assistant", "content": null}, {"role": "example_user", "content": "x"}],
            "functions": [{"name": "f", "parameters": {"default": null}}]
        }
    }));
    assert_eq!(
        record["configuration"],
        json!({
            "model": "m",
            "provider": "openai",
            "model_params": {"top_p": 0.5, "response_format": {"type": "json_object"}},
            "messages": [{"role": "user", "content": "x"}],
            "functions": [{"name": "f", "parameters": {"default": null}}]
        })
    );
}

#[test]
fn a_completion_record_is_spooled_as_the_trace_log_it_reads_back_as() {
    let req = request(json!({}));
    let record = LogRecord::from_completion(
        CompletionLog::from_call(&req, "trace-1"),
        call_of(&req),
        response(),
    );
    let bytes = encode_trace_log(&record).expect("encodes");
    let stored = StoredEntry::decode(&bytes).expect("decodes");
    assert_eq!(
        (stored.kind, stored.trace_id.as_str()),
        (EntryKind::TraceLog, "trace-1")
    );
    let as_value: LogRecord =
        serde_json::from_value(serde_json::to_value(&record).expect("json")).expect("a trace log");
    assert_eq!(
        stored.to_entry().expect("typed"),
        SpoolEntry::TraceLog(Box::new(as_value))
    );
}

#[test]
fn trace_name_and_root_default_sensibly() {
    let record = record_json(json!({"root_trace_id": null, "trace_name": "my-step"}));
    assert_eq!(
        record["root_trace_id"], "trace-1",
        "a generation without root is its own root"
    );
    assert_eq!(record["trace_name"], "my-step");
}

#[test]
fn no_api_key_reaches_a_record() {
    let text = record_json(json!({})).to_string();
    assert!(!text.contains("sk-live-SECRET"), "{text}");
    assert!(!text.contains("api_key"), "{text}");
    let log = CompletionLog::from_call(&request(json!({})), "t");
    assert!(!format!("{log:?}").contains("SECRET"));
}

#[test]
fn omit_inputs_removes_inputs_messages_functions_and_params_only() {
    let record = record_json(json!({"log_omit_inputs": true}));
    assert!(record.get("inputs").is_none());
    assert_eq!(
        record["configuration"],
        json!({"model": "gpt-4o-mini", "provider": "openai"})
    );
    assert_eq!(record["output"], "Hello Ada!");
    assert_eq!(record["target"], "Hello Ada");
}

#[test]
fn omit_outputs_removes_the_output_only() {
    let full = record_json(json!({}));
    let record = record_json(json!({"log_omit_outputs": true}));
    assert!(record.get("output").is_none());
    let mut without_output = full.clone();
    without_output.as_object_mut().map(|o| o.remove("output"));
    assert_eq!(record, without_output);
}

#[test]
fn log_omit_is_both() {
    let record = record_json(json!({"log_omit": true}));
    assert!(record.get("output").is_none() && record.get("inputs").is_none());
    assert_eq!(
        record["configuration"],
        json!({"model": "gpt-4o-mini", "provider": "openai"})
    );
    assert_eq!(
        OmitRules::from_flags(Some(true), None, Some(false)),
        OmitRules {
            inputs: true,
            outputs: true
        }
    );
}

#[test]
fn sampling_keeps_or_drops_a_whole_trace() {
    let mut kept = 0;
    for i in 0..200 {
        let root = format!("root-{i}");
        // A 3-record trace: the root and two children, all with the same root id.
        let logs = [
            CompletionLog::from_call(
                &request(json!({"root_trace_id": null, "log_sample_rate": 0.5})),
                root.clone(),
            ),
            CompletionLog::from_call(
                &request(
                    json!({"root_trace_id": root, "parent_trace_id": root, "log_sample_rate": 0.5}),
                ),
                format!("{root}-a"),
            ),
            CompletionLog::from_call(
                &request(
                    json!({"root_trace_id": root, "parent_trace_id": format!("{root}-a"), "log_sample_rate": 0.5}),
                ),
                format!("{root}-b"),
            ),
        ];
        let decisions: Vec<bool> = logs.iter().map(CompletionLog::sampled_in).collect();
        assert!(
            decisions.iter().all(|d| *d == decisions[0]),
            "trace {root} split: {decisions:?}"
        );
        kept += usize::from(decisions[0]);
    }
    assert!(
        (60..=140).contains(&kept),
        "kept {kept} of 200 traces at 0.5"
    );
}

#[test]
fn sampling_roughly_honours_the_rate_and_is_stable() {
    for rate in [0.1, 0.3, 0.9] {
        let kept = (0..20_000)
            .filter(|i| sampled_in(&format!("trace-{i}"), rate))
            .count() as f64
            / 20_000.0;
        assert!((kept - rate).abs() < 0.02, "rate {rate}: kept {kept}");
    }
    assert!((0..100).all(|i| sampled_in(&format!("t{i}"), 1.0)));
    assert!((0..100).all(|i| !sampled_in(&format!("t{i}"), 0.0)));
    assert!(sampled_in("t", f64::NAN), "a bad rate never loses logs");
    // The decision is a pure function of the id: pinned so a change of hash is noticed.
    let pinned: Vec<bool> = ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .map(|id| sampled_in(id, 0.5))
        .collect();
    assert_eq!(pinned, PINNED_AT_HALF);
}

const PINNED_AT_HALF: [bool; 8] = [false, false, false, true, false, true, true, false];

#[test]
fn entries_round_trip_through_the_versioned_envelope() {
    let client_record: LogRecord = serde_json::from_value(json!({
        "trace_id": "t-1", "output": "o", "depth": 2, "future_field": {"x": [1, null]}
    }))
    .expect("decodes");
    let entries = [
        SpoolEntry::TraceLog(Box::new(client_record)),
        SpoolEntry::TraceLogUpdate(TraceLogUpdate {
            trace_id: "t-1".into(),
            root_trace_id: None,
            field_name_to_value_map: json!({"output": "changed"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }),
        SpoolEntry::Feedback(Feedback {
            score: 0.5,
            trace_id: "t-1".into(),
            name: Some("n".into()),
            target: None,
            comment: None,
            extra: Default::default(),
        }),
    ];
    let kinds = [
        EntryKind::TraceLog,
        EntryKind::TraceLogUpdate,
        EntryKind::Feedback,
    ];
    for (entry, kind) in entries.iter().zip(kinds) {
        let bytes = entry.encode().expect("encodes");
        let stored = StoredEntry::decode(&bytes).expect("decodes");
        assert_eq!((stored.kind, stored.trace_id.as_str()), (kind, "t-1"));
        assert_eq!(&stored.to_entry().expect("typed"), entry);
    }
    // A client's unknown field is forwarded as it came.
    let stored = StoredEntry::decode(&entries[0].encode().expect("encodes")).expect("decodes");
    let body: Value = serde_json::from_str(&stored.body).expect("json");
    assert_eq!(
        body,
        json!({"trace_id": "t-1", "output": "o", "depth": 2, "future_field": {"x": [1, null]}})
    );
}

#[test]
fn unknown_versions_and_garbage_are_errors_not_panics() {
    let bytes = SpoolEntry::Feedback(Feedback {
        score: 1.0,
        trace_id: "t".into(),
        name: None,
        target: None,
        comment: None,
        extra: Default::default(),
    })
    .encode()
    .expect("encodes");
    let mut future = bytes.clone();
    future[0] = 9;
    assert_eq!(
        StoredEntry::decode(&future),
        Err(EntryError::UnknownVersion(9))
    );
    assert_eq!(StoredEntry::decode(&[]), Err(EntryError::Empty));
    for cut in 1..bytes.len() {
        assert!(StoredEntry::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    assert!(matches!(
        StoredEntry::decode(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(EntryError::Malformed(_))
    ));
}

#[test]
fn the_kinds_of_format_1_are_written_as_before_byte_for_byte() {
    // Version 1, then bincode: variant index, length-prefixed trace id, length-prefixed body.
    // An older promptd reads exactly these bytes; a spool it wrote decodes the same way.
    let cases = [
        (EntryKind::TraceLog, 0u8),
        (EntryKind::TraceLogUpdate, 1),
        (EntryKind::Feedback, 2),
    ];
    for (kind, index) in cases {
        let bytes = encode_json_text(kind, "t", "{}").expect("encodes");
        assert_eq!(bytes, [1, index, 1, b't', 2, b'{', b'}'], "{kind:?}");
        let stored = StoredEntry::decode(&bytes).expect("decodes");
        assert_eq!((stored.kind, stored.body.as_str()), (kind, "{}"));
    }
}

#[test]
fn an_integration_record_is_format_2_and_round_trips_as_sent() {
    let body = r#"{"id": "run-1", "trace_id": "lc-1", "outputs": {"x": 1.0}, "_tags": null}"#;
    let kind = EntryKind::IntegrationLog(TraceIntegration::Langchain);
    let bytes = encode_json_text(kind, "lc-1", body).expect("encodes");
    assert_eq!(
        &bytes[..3],
        [2, 3, 0],
        "version 2: an older promptd calls it an unknown version, it cannot misread it"
    );
    let stored = StoredEntry::decode(&bytes).expect("decodes");
    assert_eq!(
        (stored.kind, stored.trace_id.as_str(), stored.body.as_str()),
        (kind, "lc-1", body),
        "the bytes as the tracer sent them"
    );
    let typed = stored.to_entry().expect("typed");
    let SpoolEntry::IntegrationLog {
        integration,
        trace_id,
        record,
    } = &typed
    else {
        panic!("not an integration record: {typed:?}");
    };
    assert_eq!(
        (*integration, trace_id.as_str()),
        (TraceIntegration::Langchain, "lc-1")
    );
    assert_eq!(record["outputs"], json!({"x": 1.0}));
    let again = StoredEntry::decode(&typed.encode().expect("encodes")).expect("decodes");
    assert_eq!((again.kind, again.trace_id), (kind, "lc-1".to_owned()));

    let mut old_kind_as_2 = encode_json_text(EntryKind::Feedback, "t", "{}").expect("encodes");
    old_kind_as_2[0] = 2;
    assert_eq!(
        StoredEntry::decode(&old_kind_as_2).map(|e| e.kind),
        Ok(EntryKind::Feedback),
        "format 2 has the same envelope"
    );
    assert_eq!(
        StoredEntry::decode(&[3, 0, 1, b't', 2, b'{', b'}']),
        Err(EntryError::UnknownVersion(3))
    );
}

/// The request path writes a completion's record from its borrowed parts
/// (`CompletionRecord`); the owned `LogRecord` of the same parts (the path of a record that must
/// be cut) must come out as the same bytes, whatever is set, omitted or noted.
#[test]
fn a_borrowed_completion_record_is_the_owned_one_byte_for_byte() {
    let everything = json!({"trace_name": "step", "llm_inputs": {"a": 1}, "log_sample_rate": 0.9,
        "deployment_id": "p-1", "metadata": {"a": 1, "promptd_gid": "mine", "promptd_s": 2, "z": []}});
    let nothing = json!({"parent_trace_id": null, "root_trace_id": null, "end_user_identifier": null,
        "eval_metric_ids": null, "experiment_uuid": null, "metadata": null, "tags": null,
        "target": null, "project_uuid": null, "log_sample_rate": null});
    let requests = [
        request(json!({})),
        request(everything.clone()),
        request(nothing),
        request(json!({"log_omit_inputs": true})),
        request(json!({"log_omit_outputs": true})),
        request(json!({"log_omit": true, "metadata": {"promptd_uid": "x"}})),
    ];
    let failed = CompletionResponse {
        content: String::new(),
        error: Some("upstream said \"no\"\n".into()),
        status: "error".into(),
        ..response()
    };
    let dropped = vec!["metadata".to_owned(), "store".to_owned()];
    let unix = || {
        let mut notes = Notes::default();
        notes.add("promptd_uid", NoteValue::Number(1000));
        notes.add("promptd_gid", NoteValue::Number(100));
        notes.add("promptd_route", NoteValue::Text("completion"));
        notes
    };
    let mut with_dropped = unix();
    with_dropped.add("promptd_dropped", NoteValue::List(&dropped));
    let mut tcp = Notes::default();
    tcp.add("promptd_route", NoteValue::Text("openai_chat_completions"));
    tcp.add(
        "promptd_tcp_peer",
        NoteValue::Address("[::1]:5000".parse().expect("an address")),
    );
    let mut tcp_v4 = Notes::default();
    tcp_v4.add("promptd_route", NoteValue::Text("openai_chat_completions"));
    tcp_v4.add(
        "promptd_tcp_peer",
        NoteValue::Address("127.0.0.1:65535".parse().expect("an address")),
    );
    let mut compared = 0;
    for req in &requests {
        let log = CompletionLog::from_call(req, "trace-1");
        for answer in [response(), failed.clone()] {
            for notes in [unix(), with_dropped, tcp, tcp_v4, Notes::default()] {
                for time_to_first_token in [None, Some(0.125)] {
                    let record = CompletionRecord {
                        log: &log,
                        configuration: call_of(req),
                        response: &answer,
                        time_to_first_token,
                        notes: &notes,
                    };
                    let borrowed = record.encode_capped(1 << 20).expect("encodes");
                    assert!(borrowed.truncated.is_empty());
                    let owned = encode_trace_log(&record.to_log_record()).expect("encodes");
                    assert_eq!(
                        String::from_utf8_lossy(&borrowed.payload),
                        String::from_utf8_lossy(&owned)
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 6 * 2 * 5 * 2);
    // The client's keys stay theirs; promptd's land between them in key order.
    let log = CompletionLog::from_call(&requests[1], "trace-1");
    let answer = response();
    let notes = unix();
    let record = CompletionRecord {
        log: &log,
        configuration: call_of(&requests[1]),
        response: &answer,
        time_to_first_token: None,
        notes: &notes,
    };
    let entry = StoredEntry::decode(&record.encode_capped(1 << 20).expect("encodes").payload)
        .expect("decodes");
    let body: Value = serde_json::from_str(&entry.body).expect("JSON");
    assert_eq!(
        body["metadata"],
        json!({"a": 1, "promptd_gid": "mine", "promptd_route": "completion", "promptd_s": 2,
               "promptd_uid": "1000", "z": []})
    );
    assert!(entry
        .body
        .contains(r#""metadata":{"a":1,"promptd_gid":"mine","promptd_route""#));
}

/// A record over the cap takes the owned path and is cut there, as before.
#[test]
fn a_borrowed_completion_record_over_the_cap_is_cut() {
    let req = request(json!({}));
    let log = CompletionLog::from_call(&req, "trace-1");
    let answer = CompletionResponse {
        content: "word ".repeat(100_000),
        ..response()
    };
    let notes = Notes::default();
    let record = CompletionRecord {
        log: &log,
        configuration: call_of(&req),
        response: &answer,
        time_to_first_token: None,
        notes: &notes,
    };
    let max = 64 * 1024;
    let entry = record.encode_capped(max).expect("encodes");
    assert_eq!(entry.truncated, vec!["output".to_owned()]);
    assert!(entry.payload.len() <= max);
    let owned =
        promptd::logs::encode_trace_log_capped(record.to_log_record(), max).expect("encodes");
    assert_eq!(entry.payload, owned.payload);
}
