//! Strategies shared by the scheduler's property tests: small vocabularies of node names and
//! tags, so that generated requests and nodes often match each other.
#![allow(dead_code)]

use std::collections::BTreeSet;

use plexus_sched::{ClusterView, NodeView, Request, Resources, TagExpr, Tags};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;

pub const TAG_NAMES: [&str; 4] = ["camera", "gpu", "site", "laptop"];
pub const TAG_VALUES: [&str; 3] = ["", "lab", "home"];
pub const NODE_NAMES: [&str; 6] = ["n1", "n2", "n3", "n4", "n5", "n6"];

pub fn tag_name() -> impl Strategy<Value = String> {
    proptest::sample::select(TAG_NAMES.to_vec()).prop_map(String::from)
}

/// A leaf: a bare tag or `name=value` from the vocabulary.
pub fn tag_leaf() -> impl Strategy<Value = TagExpr> {
    prop_oneof![
        tag_name().prop_map(TagExpr::Has),
        (tag_name(), proptest::sample::select(vec!["lab", "home"]))
            .prop_map(|(n, v)| TagExpr::Equals(n, v.to_string())),
    ]
}

/// Any expression over `leaf`, shaped as the parser builds them (`And`/`Or` with two or more
/// operands).
pub fn tag_expr_from(leaf: BoxedStrategy<TagExpr>) -> impl Strategy<Value = TagExpr> {
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| TagExpr::Not(Box::new(e))),
            vec(inner.clone(), 2..4).prop_map(TagExpr::And),
            vec(inner, 2..4).prop_map(TagExpr::Or),
        ]
    })
}

pub fn tag_expr() -> impl Strategy<Value = TagExpr> {
    tag_expr_from(tag_leaf().boxed())
}

pub fn tags() -> impl Strategy<Value = Tags> {
    btree_map(
        tag_name(),
        proptest::sample::select(TAG_VALUES.to_vec()).prop_map(String::from),
        0..4,
    )
}

/// Amounts on a coarse grid so that exact fits (request == free) happen often.
fn amount(max_units: u64, unit: u64) -> impl Strategy<Value = u64> {
    (0..=max_units).prop_map(move |n| n * unit)
}

pub fn node() -> impl Strategy<Value = NodeView> {
    (
        proptest::bool::weighted(0.75),
        tags(),
        amount(8, 500),
        amount(8, 1 << 28),
        amount(10, 500),
        amount(10, 1 << 28),
        0u32..6,
        proptest::option::of(amount(8, 1 << 28)),
    )
        .prop_map(
            |(up, tags, cpu, mem, reserved_cpu, reserved_mem, processes, measured)| NodeView {
                up,
                tags,
                capacity: Resources::new(cpu, mem),
                reserved: Resources::new(reserved_cpu.min(cpu + 500), reserved_mem),
                processes,
                measured_free_mem: measured,
                disk: None,
                down_since: None,
                links: Default::default(),
            },
        )
}

pub fn view() -> impl Strategy<Value = ClusterView> {
    btree_map(
        proptest::sample::select(NODE_NAMES.to_vec()).prop_map(String::from),
        node(),
        0..6,
    )
    .prop_map(|nodes| ClusterView { nodes })
}

pub fn node_name() -> impl Strategy<Value = String> {
    proptest::sample::select(NODE_NAMES.to_vec()).prop_map(String::from)
}

pub fn request() -> impl Strategy<Value = Request> {
    (
        proptest::option::weighted(0.2, node_name()),
        vec(tag_expr_from(tag_leaf().boxed()), 0..3),
        amount(4, 500),
        amount(4, 1 << 28),
        btree_set(node_name(), 0..2),
    )
        .prop_map(
            |(on, tags, cpu, mem, avoid): (_, _, _, _, BTreeSet<String>)| Request {
                on,
                tags,
                reserve: Resources::new(cpu, mem),
                avoid,
            },
        )
}

/// The placement rules restated plainly, as an oracle: whether `node` may take `request`.
pub fn may_take(name: &str, node: &NodeView, request: &Request) -> bool {
    let free_cpu = node
        .capacity
        .cpu_millis
        .saturating_sub(node.reserved.cpu_millis);
    let mut free_mem = node
        .capacity
        .mem_bytes
        .saturating_sub(node.reserved.mem_bytes);
    if let Some(measured) = node.measured_free_mem {
        free_mem = free_mem.min(measured);
    }
    node.up
        && !request.avoid.contains(name)
        && request.on.as_deref().is_none_or(|on| on == name)
        && request.tags.iter().all(|e| e.matches(&node.tags))
        && request.reserve.cpu_millis <= free_cpu
        && request.reserve.mem_bytes <= free_mem
}
