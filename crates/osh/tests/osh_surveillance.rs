//! A video-surveillance graph: a camera feeding motion detectors spread over replicas (split),
//! a filter per detector, and one alarm merging them, with a policy using the directives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_osh::{
    parallel_nodes, plan, run, CmpOp, DirectiveKind, EdgeKind, Effect, Format, Instance,
    NumericConstraint, Placement, PlannedPipe,
};
use plexus_sched::{TagExpr, Tags};

const SURVEILLANCE: &str = include_str!("scripts/surveillance.osh");

fn spawned(src: &str) -> Instance {
    let effects = run(src).unwrap();
    match effects.last() {
        Some(Effect::Spawn(i)) | Some(Effect::TestSpawn(i)) => i.clone(),
        other => panic!("no spawn: {other:?}"),
    }
}

#[test]
fn init_runs_first_and_the_nodes_get_their_formats() {
    let effects = run(SURVEILLANCE).unwrap();
    assert_eq!(effects[0], Effect::Print("surveillance at lab\t10".into()));
    let inst = spawned(SURVEILLANCE);
    let cam = inst.node("cam").unwrap();
    assert_eq!(cam.binary, "python");
    assert_eq!(cam.args, ["camera.py", "--fps", "10"]);
    assert_eq!(cam.file_arg, Some(0));
    assert_eq!(
        (cam.input_format, cam.output_format),
        (Format::Raw, Format::Segment)
    );
    let filter = inst.node("filter").unwrap();
    assert_eq!(
        (filter.input_format, filter.output_format),
        (Format::Json, Format::Json)
    );
    assert_eq!(inst.node("alarm").unwrap().args, ["alarm.js", "lab"]);
    let kinds: Vec<_> = inst.edges.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EdgeKind::Split, EdgeKind::Basic, EdgeKind::Merge]);
}

#[test]
fn the_policy_has_every_directive_parsed() {
    let inst = spawned(SURVEILLANCE);
    let policy = inst.policy.as_ref().unwrap();
    assert_eq!(policy.name, "Watch");
    let kinds: Vec<_> = policy
        .directives
        .iter()
        .map(|d| (d.kind.clone(), d.operands.join(",")))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                DirectiveKind::Place(Placement {
                    tags: Some(TagExpr::Has("camera".into())),
                    numeric: vec![]
                }),
                "cam".into()
            ),
            (DirectiveKind::Always, "detector".into()),
            (DirectiveKind::Console, "alarm".into()),
            (DirectiveKind::MaxRate { mb_per_s: 2.0 }, "e1".into()),
            (
                DirectiveKind::OrderBy {
                    function: "(m) => m.index".into()
                },
                "e3".into()
            ),
        ]
    );
    assert_eq!(policy.directives_for("e1").count(), 1);
    assert!(policy.directives[0].kind.on_nodes());
    assert!(!policy.directives[4].kind.on_nodes());
}

#[test]
fn place_expressions_become_tag_expressions_and_numbers() {
    let src = SURVEILLANCE.replace(
        "place (#camera) cam;",
        "place (#camera && #site == \"lab\" && #cores > 4) cam;\n  \
         place (#gpu || #site = lab) detector;",
    );
    let inst = spawned(&src);
    let policy = inst.policy.unwrap();
    let places: Vec<_> = policy
        .directives
        .iter()
        .filter_map(|d| match &d.kind {
            DirectiveKind::Place(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        places[0],
        Placement {
            tags: Some(TagExpr::parse("camera&&site=lab").unwrap()),
            numeric: vec![NumericConstraint {
                tag: "cores".into(),
                op: CmpOp::Gt,
                value: 4.0
            }],
        }
    );
    assert_eq!(
        places[1].tags,
        Some(TagExpr::parse("gpu||site=lab").unwrap())
    );
    let mut lab = Tags::new();
    lab.insert("camera".into(), String::new());
    lab.insert("site".into(), "lab".into());
    assert!(places[0].tags.as_ref().unwrap().matches(&lab));
    assert!(places[0].numeric[0].matches(8.0));
    assert!(!places[0].numeric[0].matches(4.0));
}

#[test]
fn the_plan_spreads_detector_and_filter_over_replicas() {
    let inst = spawned(SURVEILLANCE);
    let parallel: Vec<_> = parallel_nodes(&inst).into_iter().collect();
    assert_eq!(parallel, ["detector", "filter"]);
    let p = plan(&inst, 3);
    let procs: Vec<_> = p
        .processes
        .iter()
        .map(|p| (p.id.as_str(), p.node_id.as_str(), p.replica))
        .collect();
    assert_eq!(
        procs,
        [
            ("cam", "cam", None),
            ("detector-0", "detector", Some(0)),
            ("detector-1", "detector", Some(1)),
            ("detector-2", "detector", Some(2)),
            ("filter-0", "filter", Some(0)),
            ("filter-1", "filter", Some(1)),
            ("filter-2", "filter", Some(2)),
            ("alarm", "alarm", None),
        ]
    );
    let pipe = |e: &str, f: &str, t: &str, kind| PlannedPipe {
        edge_id: e.into(),
        from: f.into(),
        to: t.into(),
        kind,
    };
    assert_eq!(
        p.pipes,
        [
            pipe("e1", "cam", "detector-0", EdgeKind::Split),
            pipe("e1", "cam", "detector-1", EdgeKind::Split),
            pipe("e1", "cam", "detector-2", EdgeKind::Split),
            pipe("e2", "detector-0", "filter-0", EdgeKind::Basic),
            pipe("e2", "detector-1", "filter-1", EdgeKind::Basic),
            pipe("e2", "detector-2", "filter-2", EdgeKind::Basic),
            pipe("e3", "filter-0", "alarm", EdgeKind::Merge),
            pipe("e3", "filter-1", "alarm", EdgeKind::Merge),
            pipe("e3", "filter-2", "alarm", EdgeKind::Merge),
        ]
    );
}

#[test]
fn test_spawn_takes_instances_and_checks_them_the_same() {
    let src = SURVEILLANCE.replace(
        "spawn Surveillance(\"lab\") with Watch();",
        "let where = \"hall\";\ntest_spawn(Surveillance(where, 25), Watch());",
    );
    let effects = run(&src).unwrap();
    assert_eq!(effects[0], Effect::Print("surveillance at hall\t25".into()));
    let Effect::TestSpawn(inst) = &effects[1] else {
        panic!("{effects:?}")
    };
    assert_eq!(inst.node("cam").unwrap().args, ["camera.py", "--fps", "25"]);
    assert_eq!(inst.policy.as_ref().unwrap().directives.len(), 5);
    assert_eq!(effects.len(), 2);
}

#[test]
fn policy_parameters_reach_numeric_directives() {
    let src = SURVEILLANCE
        .replace("policy Watch()", "policy Watch(rate, every = 30)")
        .replace(
            "max_rate (2) e1;",
            "max_rate (rate * 2) e1; checkpoint (every) cam;",
        )
        .replace("with Watch()", "with Watch(1.5)");
    let policy = spawned(&src).policy.unwrap();
    let kinds: Vec<_> = policy.directives.iter().map(|d| d.kind.clone()).collect();
    assert!(kinds.contains(&DirectiveKind::MaxRate { mb_per_s: 3.0 }));
    assert!(kinds.contains(&DirectiveKind::Checkpoint { seconds: 30.0 }));
}

#[test]
fn the_instance_prints_back_to_a_script_of_itself() {
    let inst = spawned(SURVEILLANCE);
    assert_eq!(run(&inst.to_osh()).unwrap(), vec![Effect::Spawn(inst)]);
}
