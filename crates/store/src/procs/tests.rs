use std::collections::BTreeMap;

use proptest::prelude::*;
use redb::backends::InMemoryBackend;
use redb::Database;

use super::*;

const TABLES: ProcTables = ProcTables::new("t.records", "t.ended", "t.names", "t.live");

fn memory_db(tables: ProcTables) -> Database {
    let db = Database::builder()
        .create_with_backend(InMemoryBackend::new())
        .unwrap();
    let txn = db.begin_write().unwrap();
    tables.create(&txn).unwrap();
    txn.commit().unwrap();
    db
}

fn id(n: u32) -> ProcId {
    ProcId::from_random(n.to_le_bytes())
}

fn record(n: u32) -> ProcRecord {
    ProcRecord::new(id(n), [1; 32], "n1", vec!["sleep".into(), "1".into()])
}

fn ended(mut r: ProcRecord, at: u64) -> ProcRecord {
    r.state = ProcState::Exited(0);
    r.ended_ms = Some(at);
    r
}

/// Runs `f` in a write transaction, committing it whatever `f` gives (a refused operation
/// must have changed nothing for the later checks to hold).
fn write<T>(db: &Database, f: impl FnOnce(&WriteTransaction) -> T) -> T {
    let txn = db.begin_write().unwrap();
    let out = f(&txn);
    txn.commit().unwrap();
    out
}

fn list(db: &Database, tables: ProcTables) -> Vec<ProcRecord> {
    tables.list(&db.begin_read().unwrap()).unwrap()
}

fn live(db: &Database, tables: ProcTables) -> Vec<ProcRecord> {
    tables.live(&db.begin_read().unwrap()).unwrap()
}

#[test]
fn ids_are_six_base32_chars_and_parse_back() {
    for n in [0u32, 1, 31, 32, u32::MAX, 0x3fff_ffff, 123_456_789] {
        let id = id(n);
        assert_eq!(id.as_str().len(), 6);
        assert_eq!(ProcId::parse(id.as_str()).unwrap(), id);
    }
    assert_eq!(id(0).as_str(), "000000");
    for bad in [
        "", "k7f2q", "k7f2q12", "K7F2Q1", "k7f2ql", "k7f2qi", "k7f2qo", "k7f2qu", "k7f2q-",
    ] {
        assert!(
            matches!(ProcId::parse(bad), Err(ProcError::BadId(_))),
            "{bad}"
        );
    }
    assert!(ProcId::parse("k7f2q1").is_ok());
}

#[test]
fn generate_retries_taken_ids_and_gives_up() {
    let mut draws = [1u32, 1, 2].into_iter();
    let first = id(1);
    let got = ProcId::generate(|| draws.next().unwrap_or(9).to_le_bytes(), |i| *i == first);
    assert_eq!(got, Some(id(2)));
    assert_eq!(ProcId::generate(|| [0; 4], |_| true), None);
}

#[test]
fn validation_refuses_bad_records() {
    let ok = record(1);
    ok.validate().unwrap();
    type Change = Box<dyn Fn(&mut ProcRecord)>;
    let cases: Vec<(&str, Change)> = vec![
        ("no program", Box::new(|r| r.command.clear())),
        (
            "empty program",
            Box::new(|r| r.command = vec![String::new()]),
        ),
        ("NUL arg", Box::new(|r| r.command.push("a\0b".into()))),
        (
            "too many args",
            Box::new(|r| r.command = vec!["x".into(); MAX_ARGS + 1]),
        ),
        (
            "env key =",
            Box::new(|r| r.env.push(("A=B".into(), "v".into()))),
        ),
        (
            "env NUL",
            Box::new(|r| r.env.push(("A".into(), "v\0".into()))),
        ),
        ("bad name", Box::new(|r| r.name = Some("a b".into()))),
        ("id-like name", Box::new(|r| r.name = Some("k7f2q1".into()))),
        ("empty node", Box::new(|r| r.node.clear())),
        (
            "ended without time",
            Box::new(|r| r.state = ProcState::Exited(1)),
        ),
        ("time without end", Box::new(|r| r.ended_ms = Some(5))),
        ("cwd NUL", Box::new(|r| r.cwd = Some("/\0".into()))),
    ];
    for (what, change) in cases {
        let mut r = ok.clone();
        change(&mut r);
        assert!(matches!(r.validate(), Err(ProcError::Invalid(_))), "{what}");
    }
}

#[test]
fn exit_status_is_code_or_128_plus_signal() {
    assert_eq!(ended(record(1), 1).exit_status(), Some(0));
    let mut r = record(1);
    r.state = ProcState::Killed(9);
    assert_eq!(r.exit_status(), Some(137));
    assert_eq!(record(1).exit_status(), None);
}

#[test]
fn decode_refuses_other_versions_trailing_bytes_and_oversize() {
    let bytes = record(1).encode();
    assert_eq!(bytes[0], PROC_ENCODING);
    let mut v4 = bytes.clone();
    v4[0] = 4;
    assert!(matches!(ProcRecord::decode(&v4), Err(ProcError::Decode(_))));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        ProcRecord::decode(&long),
        Err(ProcError::Decode(_))
    ));
    assert!(matches!(ProcRecord::decode(&[]), Err(ProcError::Decode(_))));
    assert!(matches!(
        ProcRecord::decode(&vec![1; MAX_PROC_BYTES + 1]),
        Err(ProcError::Limit(_))
    ));
}

#[test]
fn records_of_encoding_1_are_still_read() {
    let mut r = record(1);
    r.env = vec![("K".into(), "v".into())];
    r.everywhere = Some("g1".into());
    // Encoding 1 is the record without `copied` and `note`, field by field.
    let body = postcard::to_allocvec(&(
        r.id,
        &r.name,
        r.owner,
        &r.node,
        &r.command,
        &r.env,
        &r.cwd,
        &r.placement,
        r.restart,
        &r.everywhere,
        &r.state,
        r.started_ms,
        r.ended_ms,
        r.restarts,
        r.limits,
        r.generation,
    ))
    .unwrap();
    let mut v1 = vec![1];
    v1.extend(body);
    assert_eq!(ProcRecord::decode(&v1).unwrap(), r);
    assert_eq!(r.encode()[0], 3, "written as the current encoding");
}

#[test]
fn records_of_encoding_2_are_still_read() {
    let mut r = record(1);
    r.note = Some("moved".into());
    // Encoding 2 is the record without `wiring`: the current encoding minus its last field
    // (postcard writes `None` as one zero byte).
    let current = r.encode();
    assert_eq!(current.last(), Some(&0));
    let mut v2 = current[..current.len() - 1].to_vec();
    v2[0] = 2;
    assert_eq!(ProcRecord::decode(&v2).unwrap(), r);
}

#[test]
fn wiring_round_trips_and_is_bounded() {
    let mut r = record(1);
    r.wiring = Some(Wiring {
        graph: "gk7f2q1".into(),
        graph_name: "pipeline".into(),
        stage: "2".into(),
        inputs: vec![Incoming {
            pipe: "gk7f2q1.1".into(),
            from: id(2),
            channel: Some("frames".into()),
        }],
        input_format: "raw".into(),
        terminal_input: false,
        outputs: vec![Outgoing {
            pipe: "gk7f2q1.2".into(),
            stderr: false,
            channel: None,
            to: PipeTarget::Console("n1".into()),
        }],
        output_format: "json".into(),
        split: true,
        max_rate: Some(2_000_000),
        window: 1 << 20,
        order_by: Some("index".into()),
        checkpoint: Some(5),
    });
    assert_eq!(ProcRecord::decode(&r.encode()).unwrap(), r);
    if let Some(w) = r.wiring.as_mut() {
        w.stage = "x".repeat(MAX_WIRING_NAME_BYTES + 1);
    }
    assert!(matches!(r.validate(), Err(ProcError::Invalid(_))));
}

#[test]
fn clipped_reasons_keep_whole_characters() {
    let long = "é".repeat(MAX_REASON_BYTES);
    let clipped = clip_reason(&long);
    assert!(clipped.len() <= MAX_REASON_BYTES && clipped.len() >= MAX_REASON_BYTES - 1);
    assert_eq!(clip_reason("abc"), "abc");
}

#[test]
fn copied_names_and_notes_are_checked() {
    let mut r = record(1);
    r.copied = Some(format!("{}.py", "ab".repeat(32)));
    r.note = Some("moved from n2".into());
    assert_eq!(ProcRecord::decode(&r.encode()).unwrap(), r);
    for bad in [
        "ab".repeat(32).to_uppercase(),
        "ab".repeat(31),
        format!("{}.", "ab".repeat(32)),
        format!("{}.p/y", "ab".repeat(32)),
        format!("{}.{}", "ab".repeat(32), "x".repeat(17)),
        "../../bin/sh".into(),
    ] {
        r.copied = Some(bad.clone());
        assert!(r.validate().is_err(), "{bad}");
    }
    r.copied = None;
    r.note = Some("x".repeat(MAX_REASON_BYTES + 1));
    assert!(r.validate().is_err());
}

#[test]
fn put_is_idempotent_and_refuses_another_record_with_the_id() {
    let db = memory_db(TABLES);
    let r = record(1);
    assert_eq!(write(&db, |t| TABLES.put(t, r.clone())).unwrap(), r);
    assert_eq!(write(&db, |t| TABLES.put(t, r.clone())).unwrap(), r);
    let mut other = r.clone();
    other.node = "n2".into();
    assert!(matches!(
        write(&db, |t| TABLES.put(t, other)),
        Err(ProcError::Exists(i)) if i == r.id
    ));
    assert_eq!(list(&db, TABLES), vec![r]);
}

#[test]
fn live_names_are_unique_and_freed_when_ended() {
    let db = memory_db(TABLES);
    let mut a = record(1);
    a.name = Some("crawler".into());
    let mut b = record(2);
    b.name = Some("crawler".into());
    let a = write(&db, |t| TABLES.put(t, a)).unwrap();
    assert!(matches!(
        write(&db, |t| TABLES.put(t, b.clone())),
        Err(ProcError::NameTaken(n)) if n == "crawler"
    ));
    let a = write(&db, |t| TABLES.update(t, ended(a, 10))).unwrap();
    let b = write(&db, |t| TABLES.put(t, b)).unwrap();
    // `a` restarting now would take the name back from a live process: refused.
    let mut again = a.clone();
    again.state = ProcState::Restarting;
    again.ended_ms = None;
    assert!(matches!(
        write(&db, |t| TABLES.update(t, again.clone())),
        Err(ProcError::NameTaken(_))
    ));
    write(&db, |t| TABLES.remove(t, &b.id)).unwrap();
    write(&db, |t| TABLES.update(t, again)).unwrap();
}

#[test]
fn updates_compare_generations_and_repeat_harmlessly() {
    let db = memory_db(TABLES);
    let r = write(&db, |t| TABLES.put(t, record(1))).unwrap();
    let mut running = r.clone();
    running.state = ProcState::Running;
    running.started_ms = 5;
    let stored = write(&db, |t| TABLES.update(t, running.clone())).unwrap();
    assert_eq!(stored.generation, 1);
    // The same update again (a retried proposal) is a success and changes nothing.
    assert_eq!(
        write(&db, |t| TABLES.update(t, running.clone())).unwrap(),
        stored
    );
    // A different update from generation 0 lost the race.
    let mut lost = r.clone();
    lost.state = ProcState::Lost;
    assert!(matches!(
        write(&db, |t| TABLES.update(t, lost)),
        Err(ProcError::Conflict {
            expected: 0,
            found: 1,
            ..
        })
    ));
    let mut owner = stored.clone();
    owner.owner = [2; 32];
    assert!(matches!(
        write(&db, |t| TABLES.update(t, owner)),
        Err(ProcError::Immutable(_))
    ));
    assert!(matches!(
        write(&db, |t| TABLES.update(t, record(9))),
        Err(ProcError::NotFound(_))
    ));
    assert_eq!(list(&db, TABLES), vec![stored]);
}

#[test]
fn remove_gives_the_record_once() {
    let db = memory_db(TABLES);
    let r = write(&db, |t| TABLES.put(t, record(1))).unwrap();
    assert_eq!(
        write(&db, |t| TABLES.remove(t, &r.id)).unwrap(),
        Some(r.clone())
    );
    assert_eq!(write(&db, |t| TABLES.remove(t, &r.id)).unwrap(), None);
    assert!(TABLES
        .get(&db.begin_read().unwrap(), &r.id)
        .unwrap()
        .is_none());
}

#[test]
fn retention_drops_the_oldest_ended_records_only() {
    let tables = TABLES.with_max_ended(2);
    let db = memory_db(tables);
    let live = write(&db, |t| tables.put(t, record(100))).unwrap();
    for (n, at) in [(1, 30), (2, 10), (3, 20)] {
        write(&db, |t| tables.put(t, ended(record(n), at))).unwrap();
    }
    let ids: Vec<ProcId> = list(&db, tables).iter().map(|r| r.id).collect();
    let mut want = vec![id(1), id(3), live.id];
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn dump_and_restore_rebuild_the_indexes() {
    let db = memory_db(TABLES);
    let mut named = record(1);
    named.name = Some("web".into());
    write(&db, |t| TABLES.put(t, named.clone())).unwrap();
    write(&db, |t| TABLES.put(t, ended(record(2), 7))).unwrap();
    let dump = TABLES.dump(&db.begin_read().unwrap()).unwrap();
    let other = memory_db(TABLES);
    write(&other, |t| TABLES.put(t, record(3))).unwrap();
    write(&other, |t| TABLES.restore(t, &dump)).unwrap();
    assert_eq!(list(&other, TABLES), list(&db, TABLES));
    assert_eq!(live(&other, TABLES), vec![named]);
    let mut clash = record(4);
    clash.name = Some("web".into());
    assert!(matches!(
        write(&other, |t| TABLES.put(t, clash)),
        Err(ProcError::NameTaken(_))
    ));
    assert!(write(&other, |t| TABLES.restore(t, &[vec![9, 9]])).is_err());
}

#[test]
fn a_file_without_the_live_index_gets_it_rebuilt() {
    let db = memory_db(TABLES);
    let running = write(&db, |t| TABLES.put(t, record(1))).unwrap();
    write(&db, |t| TABLES.put(t, ended(record(2), 7))).unwrap();
    // As a file written before the index existed: records, and no index.
    write(&db, |t| t.delete_table(TABLES.live)).unwrap();
    write(&db, |t| TABLES.create(t)).unwrap();
    assert_eq!(live(&db, TABLES), vec![running.clone()]);
    // Opening again with the index whole changes nothing.
    write(&db, |t| TABLES.create(t)).unwrap();
    assert_eq!(live(&db, TABLES), vec![running]);
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9._-]{1,8}", any::<String>()]
}

fn arb_state() -> impl Strategy<Value = ProcState> {
    prop_oneof![
        Just(ProcState::Starting),
        Just(ProcState::Running),
        any::<i32>().prop_map(ProcState::Exited),
        any::<i32>().prop_map(ProcState::Killed),
        arb_string().prop_map(ProcState::FailedToStart),
        Just(ProcState::Lost),
        Just(ProcState::Restarting),
        Just(ProcState::CrashLooping),
    ]
}

prop_compose! {
    fn arb_record()(
        n in any::<u32>(),
        name in proptest::option::of("[a-z][a-z0-9._-]{0,10}"),
        owner in any::<[u8; 32]>(),
        node in "[a-z0-9]{1,8}",
        command in proptest::collection::vec(arb_string(), 1..4),
        env in proptest::collection::vec(("[A-Z_]{1,6}", arb_string()), 0..3),
        cwd in proptest::option::of(arb_string()),
        tags in proptest::collection::vec(arb_string(), 0..3),
        cpu in proptest::option::of(any::<u64>()),
        mem in proptest::option::of(any::<u64>()),
        restart in prop_oneof![
            Just(RestartPolicy::Never), Just(RestartPolicy::OnFailure), Just(RestartPolicy::Always)
        ],
        everywhere in proptest::option::of(arb_string()),
        state in arb_state(),
        times in any::<(u64, u64, u32, u64)>(),
        limits in prop_oneof![Just(Enforced::None), Just(Enforced::Cgroup), Just(Enforced::Rlimit)],
        copied in proptest::option::of(prop_oneof!["[0-9a-f]{64}(\\.[a-z0-9]{1,3})?", arb_string()]),
        note in proptest::option::of(arb_string()),
    ) -> ProcRecord {
        let (started_ms, end, restarts, generation) = times;
        ProcRecord {
            id: id(n),
            name,
            owner,
            node,
            command,
            copied,
            env,
            cwd,
            placement: Placement { on: None, tags, cpu_millis: cpu, mem_bytes: mem },
            restart,
            everywhere,
            ended_ms: state.is_ended().then_some(end),
            state,
            started_ms,
            restarts,
            limits,
            note,
            generation,
            wiring: None,
        }
    }
}

proptest! {
    #[test]
    fn records_round_trip_exactly_when_valid(r in arb_record()) {
        let decoded = ProcRecord::decode(&r.encode());
        match r.validate() {
            Ok(()) => prop_assert_eq!(decoded.unwrap(), r),
            Err(_) => prop_assert!(decoded.is_err()),
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut framed = vec![PROC_ENCODING];
        framed.extend(&bytes);
        for input in [&bytes, &framed] {
            if let Ok(r) = ProcRecord::decode(input) {
                // What decodes is valid and survives a round trip (postcard accepts overlong
                // varints, so the input itself need not be canonical).
                prop_assert!(r.validate().is_ok());
                prop_assert_eq!(ProcRecord::decode(&r.encode()).unwrap(), r);
            }
        }
    }

    #[test]
    fn decoding_a_damaged_record_never_panics(r in arb_record(), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = r.encode();
        let i = at % bytes.len();
        bytes[i] = byte;
        let _ = ProcRecord::decode(&bytes);
        bytes.truncate(i);
        let _ = ProcRecord::decode(&bytes);
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any sequence of puts, updates (ending records at various times) and removes keeps the
    /// table equal to a model: live records never dropped, at most `max` ended ones, the
    /// dropped ones the oldest by (end time, id), live names unique.
    #[test]
    fn the_table_follows_a_model(ops in proptest::collection::vec((0u8..4, 0u32..12, 0u64..6, any::<bool>()), 1..40)) {
        let max = 3;
        let tables = TABLES.with_max_ended(max);
        let db = memory_db(tables);
        let mut model: BTreeMap<ProcId, ProcRecord> = BTreeMap::new();
        for (op, n, at, named) in ops {
            let mut r = record(n);
            if named {
                r.name = Some(format!("name{}", n % 3));
            }
            match op {
                0 => {
                    let got = write(&db, |t| tables.put(t, r.clone()));
                    let name_taken = r.name.as_ref().is_some_and(|name| model.values().any(|o| {
                        o.id != r.id && !o.state.is_ended() && o.name.as_ref() == Some(name)
                    }));
                    match model.get(&r.id) {
                        Some(o) if *o == r => prop_assert!(got.is_ok()),
                        Some(_) => prop_assert!(matches!(got, Err(ProcError::Exists(_)))),
                        None if name_taken => prop_assert!(matches!(got, Err(ProcError::NameTaken(_)))),
                        None => { model.insert(r.id, got.unwrap()); }
                    }
                }
                1 => {
                    let Some(old) = model.get(&r.id).cloned() else { continue };
                    let next = ended(old, at);
                    let stored = write(&db, |t| tables.update(t, next)).unwrap();
                    model.insert(r.id, stored);
                }
                2 => {
                    // Started again (a restart): live, whatever it was.
                    let Some(mut next) = model.get(&r.id).cloned() else { continue };
                    next.state = ProcState::Running;
                    next.ended_ms = None;
                    let name_taken = next.name.as_ref().is_some_and(|name| model.values().any(|o| {
                        o.id != next.id && !o.state.is_ended() && o.name.as_ref() == Some(name)
                    }));
                    let got = write(&db, |t| tables.update(t, next));
                    if name_taken {
                        prop_assert!(matches!(got, Err(ProcError::NameTaken(_))));
                    } else {
                        model.insert(r.id, got.unwrap());
                    }
                }
                _ => {
                    let got = write(&db, |t| tables.remove(t, &r.id)).unwrap();
                    prop_assert_eq!(got, model.remove(&r.id));
                }
            }
            // Retention, on the model.
            let mut ended_ids: Vec<(u64, ProcId)> = model
                .values()
                .filter_map(|r| r.ended_ms.map(|at| (at, r.id)))
                .collect();
            ended_ids.sort();
            let excess = ended_ids.len().saturating_sub(max as usize);
            for (_, gone) in ended_ids.into_iter().take(excess) {
                model.remove(&gone);
            }
            prop_assert_eq!(list(&db, tables), model.values().cloned().collect::<Vec<_>>());
            let model_live: Vec<ProcRecord> =
                model.values().filter(|r| !r.state.is_ended()).cloned().collect();
            prop_assert_eq!(live(&db, tables), model_live);
        }
    }
}

#[test]
fn placement_names_have_their_own_bounds() {
    let mut r = record(1);
    r.placement.tags = vec!["t".repeat(MAX_TAG_EXPR_BYTES)];
    r.placement.on = Some("n".repeat(MAX_PROC_NAME_BYTES));
    r.everywhere = Some("g".repeat(MAX_PROC_NAME_BYTES));
    r.validate().unwrap();
    for change in [
        |r: &mut ProcRecord| r.placement.tags.push("t".repeat(MAX_TAG_EXPR_BYTES + 1)),
        |r: &mut ProcRecord| r.placement.on = Some("n".repeat(MAX_PROC_NAME_BYTES + 1)),
        |r: &mut ProcRecord| r.everywhere = Some(String::new()),
        |r: &mut ProcRecord| r.placement.tags = vec!["x".into(); MAX_TAG_EXPRS + 1],
    ] {
        let mut bad = r.clone();
        change(&mut bad);
        assert!(matches!(bad.validate(), Err(ProcError::Invalid(_))));
    }
}
