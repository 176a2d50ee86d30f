//! `hsm:plugin@0.1.0`'s conversions: its trees are lists of nodes, lowered from
//! borrowed buffers going in and rebuilt, with checks, coming out.

use std::ops::Range;

use hsm_model::text::Encoding;
use hsm_model::{Piece, Value};
use indexmap::IndexMap;

use super::{Budget, Handles, OVERHEAD, malformed, mode_to_wit, requester_to_wit, text_from_wit};
use crate::bindings::v0_1::hsm::plugin::types as w;
use crate::plugin::{CallErrorKind, MergeInput, PlanInput};

/// Builds a merge request, its trees laid out in shared buffers, and hands it to
/// `call`.
pub(crate) fn with_merge_request<R>(
    input: &MergeInput<'_>,
    handles: &mut Handles,
    call: impl FnOnce(w::MergeRequest<'_>) -> R,
) -> R {
    let (trees, defaults, params) = merge_trees(input, handles);
    let nodes = trees.nodes();
    let contributions = contributions_to_wit(input, &nodes, &params);
    call(merge_request_to_wit(input, &nodes, &defaults, &contributions))
}

/// Builds a plan request, its trees laid out in shared buffers, and hands it to
/// `call`.
pub(crate) fn with_plan_request<R>(
    input: &PlanInput<'_>,
    handles: &mut Handles,
    call: impl FnOnce(w::PlanRequest<'_>) -> R,
) -> R {
    let (trees, own, params) = plan_trees(input, handles);
    let nodes = trees.nodes();
    let consumers = consumers_to_wit(input, &nodes, &params);
    call(plan_request_to_wit(input, &nodes, &own, &consumers))
}

// ---- into the plugin ----

/// A secret's encoding, as a 0.1.0 piece says it.
fn encoding_to_wit(e: Encoding) -> w::Encoding {
    match e {
        Encoding::Raw => w::Encoding::Raw,
        Encoding::Url => w::Encoding::Url,
    }
}

/// A request's trees in the borrowed form the bindings lower without copying: every
/// string stays the caller's own, and the nodes, list children, map entries and text
/// pieces of all the request's trees live in four flat buffers. Trees are added
/// first ([`Trees::add`]); [`Trees::nodes`] then lays out the nodes that
/// [`Trees::tree`] hands out.
#[derive(Default)]
struct Trees<'a> {
    nodes: Vec<Proto>,
    children: Vec<u32>,
    entries: Vec<(&'a str, u32)>,
    pieces: Vec<w::PieceParam<'a>>,
}

/// A node whose lists are ranges of the [`Trees`]' buffers.
enum Proto {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Range<usize>),
    List(Range<usize>),
    Map(Range<usize>),
}

/// One tree of a [`Trees`]: its nodes' range.
struct TreeRef(Range<usize>);

impl<'a> Trees<'a> {
    /// Adds a value as a tree (node 0 its root, children after their parent);
    /// secrets become handles.
    fn add(&mut self, v: &'a Value, handles: &mut Handles) -> TreeRef {
        let base = self.nodes.len();
        self.push(base, v, handles);
        TreeRef(base..self.nodes.len())
    }

    /// Pushes `v` and its descendants; returns its index in its tree.
    fn push(&mut self, base: usize, v: &'a Value, handles: &mut Handles) -> u32 {
        let index = self.nodes.len();
        self.nodes.push(Proto::Null);
        let node = match v {
            Value::Null => Proto::Null,
            Value::Bool(b) => Proto::Bool(*b),
            Value::Int(i) => Proto::Int(*i),
            Value::Float(f) => Proto::Float(*f),
            Value::Text(t) => {
                let start = self.pieces.len();
                self.pieces.extend(t.pieces().iter().map(|p| piece_to_wit(p, handles)));
                Proto::Text(start..self.pieces.len())
            }
            // Each child's slot is taken before the child pushes its own.
            Value::List(items) => {
                let start = self.children.len();
                self.children.resize(start + items.len(), 0);
                for (k, item) in items.iter().enumerate() {
                    self.children[start + k] = self.push(base, item, handles);
                }
                Proto::List(start..start + items.len())
            }
            Value::Map(m) => {
                let start = self.entries.len();
                self.entries.resize(start + m.len(), ("", 0));
                for (k, (key, item)) in m.iter().enumerate() {
                    self.entries[start + k] = (key.as_str(), self.push(base, item, handles));
                }
                Proto::Map(start..start + m.len())
            }
        };
        self.nodes[index] = node;
        (index - base) as u32
    }

    /// Every tree's nodes, laid out for [`Trees::tree`].
    fn nodes(&self) -> Vec<w::NodeParam<'_>> {
        self.nodes
            .iter()
            .map(|p| match p {
                Proto::Null => w::NodeParam::Null,
                Proto::Bool(b) => w::NodeParam::Boolean(*b),
                Proto::Int(i) => w::NodeParam::Integer(*i),
                Proto::Float(f) => w::NodeParam::Float(*f),
                Proto::Text(r) => w::NodeParam::Text(w::TextParam { pieces: &self.pieces[r.clone()] }),
                Proto::List(r) => w::NodeParam::List(&self.children[r.clone()]),
                Proto::Map(r) => w::NodeParam::Map(&self.entries[r.clone()]),
            })
            .collect()
    }

    /// A tree added earlier, from the laid-out `nodes`.
    fn tree<'n>(nodes: &'n [w::NodeParam<'n>], tree: &TreeRef) -> w::TreeParam<'n> {
        w::TreeParam { nodes: &nodes[tree.0.clone()] }
    }
}

fn piece_to_wit<'a>(p: &'a Piece, handles: &mut Handles) -> w::PieceParam<'a> {
    match p {
        Piece::Lit(s) => w::PieceParam::Lit(s),
        Piece::Secret { id, label, encoding } => w::PieceParam::Secret(w::SecretUse {
            handle: handles.handle(*id, label),
            encoding: encoding_to_wit(*encoding),
        }),
        Piece::Generated { name, encoding } => {
            w::PieceParam::Generated(w::GeneratedUseParam { name, encoding: encoding_to_wit(*encoding) })
        }
        Piece::HostPort { container, port } => w::PieceParam::HostPort(w::PortRefParam { container, port: *port }),
    }
}

/// A merge request's trees: the defaults, and each contribution's params.
fn merge_trees<'a>(input: &'a MergeInput<'_>, handles: &mut Handles) -> (Trees<'a>, TreeRef, Vec<TreeRef>) {
    let mut trees = Trees::default();
    let defaults = trees.add(input.defaults, handles);
    let params = input.contributions.iter().map(|c| trees.add(c.params, handles)).collect();
    (trees, defaults, params)
}

/// A merge request's contributions, with their trees (from [`merge_trees`]) laid out.
fn contributions_to_wit<'a>(
    input: &'a MergeInput<'_>,
    nodes: &'a [w::NodeParam<'a>],
    params: &[TreeRef],
) -> Vec<w::Contribution<'a>> {
    let contributions = input.contributions.iter().zip(params);
    contributions
        .map(|(c, tree)| w::Contribution {
            from: requester_to_wit(&c.from),
            origin: &c.origin,
            params: Trees::tree(nodes, tree),
        })
        .collect()
}

/// The merge request, with its trees (from [`merge_trees`]) laid out.
fn merge_request_to_wit<'a>(
    input: &'a MergeInput<'_>,
    nodes: &'a [w::NodeParam<'a>],
    defaults: &TreeRef,
    contributions: &'a [w::Contribution<'a>],
) -> w::MergeRequest<'a> {
    w::MergeRequest { service: input.service, kind: input.kind, defaults: Trees::tree(nodes, defaults), contributions }
}

/// A plan request's trees: the config and the profile's settings, and each
/// consumer's params.
fn plan_trees<'a>(input: &'a PlanInput<'_>, handles: &mut Handles) -> (Trees<'a>, [TreeRef; 2], Vec<TreeRef>) {
    let mut trees = Trees::default();
    let own = [trees.add(input.config, handles), trees.add(input.profile.settings, handles)];
    let params = input.consumers.iter().map(|c| trees.add(c.params, handles)).collect();
    (trees, own, params)
}

/// A plan request's consumers, with their trees (from [`plan_trees`]) laid out.
fn consumers_to_wit<'a>(
    input: &'a PlanInput<'_>,
    nodes: &'a [w::NodeParam<'a>],
    params: &[TreeRef],
) -> Vec<w::Consumer<'a>> {
    let consumers = input.consumers.iter().zip(params);
    consumers.map(|(c, tree)| w::Consumer { package: c.consumer.package(), params: Trees::tree(nodes, tree) }).collect()
}

/// The plan request, with its trees (from [`plan_trees`]) laid out.
fn plan_request_to_wit<'a>(
    input: &'a PlanInput<'_>,
    nodes: &'a [w::NodeParam<'a>],
    [config, settings]: &[TreeRef; 2],
    consumers: &'a [w::Consumer<'a>],
) -> w::PlanRequest<'a> {
    w::PlanRequest {
        project: input.project,
        service: input.service,
        kind: input.kind,
        config: Trees::tree(nodes, config),
        profile: w::Profile {
            name: input.profile.name,
            mode: mode_to_wit(input.profile.mode),
            settings: Trees::tree(nodes, settings),
        },
        consumers,
        host_address: input.host_address,
    }
}

// ---- out of the plugin ----

/// Rebuilds a tree, refusing what a well-behaved plugin never sends: indices out of
/// range or pointing backwards (cycles), a node used twice (exponential blow-up),
/// nesting deeper than 64.
pub(crate) fn tree_from_wit(
    tree: w::TreeResult,
    handles: &Handles,
    budget: &mut Budget,
) -> Result<Value, CallErrorKind> {
    budget.take(tree.nodes.len().saturating_mul(OVERHEAD))?;
    let mut nodes: Vec<Option<w::NodeResult>> = tree.nodes.into_iter().map(Some).collect();
    if nodes.is_empty() {
        return Ok(Value::Null);
    }
    fn build(
        nodes: &mut [Option<w::NodeResult>],
        index: u32,
        parent: Option<u32>,
        depth: u32,
        handles: &Handles,
        budget: &mut Budget,
    ) -> Result<Value, CallErrorKind> {
        hsm_wire::check_depth(depth)?;
        if parent.is_some_and(|p| index <= p) {
            return Err(malformed(format!("tree node {index} comes before its parent")));
        }
        let node = nodes
            .get_mut(index as usize)
            .ok_or_else(|| malformed(format!("tree node {index} does not exist")))?
            .take()
            .ok_or_else(|| malformed(format!("tree node {index} is used twice")))?;
        Ok(match node {
            w::NodeResult::Null => Value::Null,
            w::NodeResult::Boolean(b) => Value::Bool(b),
            w::NodeResult::Integer(i) => Value::Int(i),
            w::NodeResult::Float(f) => Value::Float(f),
            w::NodeResult::Text(t) => Value::Text(text_from_wit(t.into(), handles, budget)?),
            w::NodeResult::List(children) => Value::List(
                children
                    .into_iter()
                    .map(|c| build(nodes, c, Some(index), depth + 1, handles, budget))
                    .collect::<Result<_, _>>()?,
            ),
            w::NodeResult::Map(entries) => {
                let mut map = IndexMap::new();
                for (key, child) in entries {
                    budget.take_str(&key)?;
                    let value = build(nodes, child, Some(index), depth + 1, handles, budget)?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err(malformed(format!("key `{}` appears twice in a map", key.escape_debug())));
                    }
                }
                Value::Map(map)
            }
        })
    }
    build(&mut nodes, 0, None, 0, handles, budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_model::{SecretStore, Sensitive, Text};

    #[test]
    fn values_cross_with_secrets_as_handles() {
        let mut store = SecretStore::new();
        let id = store.insert(Sensitive::new("hunter2".into()));
        let value = Value::Map(IndexMap::from([
            (
                "password".to_string(),
                Value::Text(Text::from_pieces([Piece::Secret { id, label: "${P}".into(), encoding: Encoding::Raw }])),
            ),
            ("ports".to_string(), Value::List(vec![Value::Int(1), Value::Bool(true)])),
        ]));
        let mut handles = Handles::default();
        let mut trees = Trees::default();
        // Another tree first, nested, with a map, an empty map and the same secret:
        // each tree's indices are its own, and the buffers are shared.
        let secret = Value::Text(Text::from_pieces([
            Piece::Lit("a".into()),
            Piece::Secret { id, label: "${P}".into(), encoding: Encoding::Url },
        ]));
        let other = Value::List(vec![
            Value::from("x"),
            Value::Map(IndexMap::from([
                ("inner".to_string(), Value::List(vec![Value::List(vec![Value::Int(2)]), Value::Map(IndexMap::new())])),
                ("secret".to_string(), secret),
            ])),
            Value::Null,
        ]);
        let (before, tree) = (trees.add(&other, &mut handles), trees.add(&value, &mut handles));
        let nodes = trees.nodes();
        let tree = Trees::tree(&nodes, &tree);
        assert!(!format!("{tree:?}").contains("hunter2"));
        let mut budget = Budget::new(1 << 20);
        assert_eq!(tree_from_wit(owned(tree), &handles, &mut budget).unwrap(), value);
        let before = Trees::tree(&nodes, &before);
        assert_eq!(tree_from_wit(owned(before), &handles, &mut budget).unwrap(), other);
        assert_eq!(handles.secrets.len(), 1, "one handle for the one secret");
    }

    /// What a plugin that echoes a tree returns.
    fn owned(tree: w::TreeParam<'_>) -> w::TreeResult {
        let text = |t: &w::TextParam<'_>| w::TextResult {
            pieces: t
                .pieces
                .iter()
                .map(|p| match p {
                    w::PieceParam::Lit(s) => w::PieceResult::Lit(s.to_string()),
                    w::PieceParam::Secret(s) => w::PieceResult::Secret(*s),
                    w::PieceParam::Generated(g) => {
                        w::PieceResult::Generated(w::GeneratedUseResult { name: g.name.into(), encoding: g.encoding })
                    }
                    w::PieceParam::HostPort(p) => {
                        w::PieceResult::HostPort(w::PortRefResult { container: p.container.into(), port: p.port })
                    }
                })
                .collect(),
        };
        let nodes = tree.nodes.iter().map(|n| match n {
            w::NodeParam::Null => w::NodeResult::Null,
            w::NodeParam::Boolean(b) => w::NodeResult::Boolean(*b),
            w::NodeParam::Integer(i) => w::NodeResult::Integer(*i),
            w::NodeParam::Float(f) => w::NodeResult::Float(*f),
            w::NodeParam::Text(t) => w::NodeResult::Text(text(t)),
            w::NodeParam::List(c) => w::NodeResult::List(c.to_vec()),
            w::NodeParam::Map(e) => w::NodeResult::Map(e.iter().map(|(k, i)| (k.to_string(), *i)).collect()),
        });
        w::TreeResult { nodes: nodes.collect() }
    }

    #[test]
    fn malformed_trees_are_refused() {
        let handles = Handles::default();
        let check =
            |nodes: Vec<w::NodeResult>| tree_from_wit(w::TreeResult { nodes }, &handles, &mut Budget::new(1 << 20));
        assert_eq!(check(vec![w::NodeResult::List(vec![0])]), Err(malformed("tree node 0 comes before its parent")));
        assert_eq!(check(vec![w::NodeResult::List(vec![5])]), Err(malformed("tree node 5 does not exist")));
        assert_eq!(
            check(vec![w::NodeResult::List(vec![1, 1]), w::NodeResult::Null]),
            Err(malformed("tree node 1 is used twice"))
        );
        let forged = w::TextResult {
            pieces: vec![w::PieceResult::Secret(w::SecretUse { handle: 7, encoding: w::Encoding::Raw })],
        };
        assert_eq!(
            check(vec![w::NodeResult::Text(forged)]),
            Err(malformed("secret handle 7 was not given to it in this call"))
        );
        let deep: Vec<w::NodeResult> =
            (0..70).map(|i| w::NodeResult::List(if i < 69 { vec![i + 1] } else { vec![] })).collect();
        assert_eq!(check(deep), Err(malformed("a value is nested deeper than 64 levels")));
    }

    #[test]
    fn output_beyond_the_budget_is_refused() {
        let handles = Handles::default();
        let big = w::NodeResult::Text(w::TextResult { pieces: vec![w::PieceResult::Lit("x".repeat(2000))] });
        assert_eq!(
            tree_from_wit(w::TreeResult { nodes: vec![big] }, &handles, &mut Budget::new(1024)),
            Err(CallErrorKind::TooLarge(1024))
        );
    }
}
