//! Values shared by the bindings: the Node handle, failures carried through Rhai,
//! and conversions of runtime data into Rhai maps.

use std::rc::Rc;

use netlab_runtime::link::LinkState;
use netlab_runtime::{Error, Lab, Node};
use rhai::{Dynamic, EvalAltResult, Map, NativeCallContext, Position};

/// A node handle as scripts see it (type name "Node").
#[derive(Clone)]
pub struct NodeRef(pub Rc<Node>);

impl NodeRef {
    pub fn name(&self) -> String {
        self.0.name.to_string()
    }
}

/// A failed check, carried through Rhai up to the report.
#[derive(Debug, Clone)]
pub struct CheckFailure {
    pub title: String,
    pub detail: String,
    pub hint: Option<String>,
}

/// What aborts a lab: a failed check (exit 1) or an error (exit 2 or 3).
#[derive(Clone)]
pub enum Failure {
    Check(Rc<CheckFailure>),
    Error(Rc<Error>),
}

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

pub fn failure(failure: Failure, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(failure), pos))
}

/// Converts a runtime error into a Rhai error at the call's position.
pub fn to_rhai<T>(ctx: &NativeCallContext, r: Result<T, Error>) -> RhaiResult<T> {
    r.map_err(|e| failure(Failure::Error(Rc::new(e)), ctx.call_position()))
}

/// A node argument: a Node handle or a node's name.
pub fn node_arg(ctx: &NativeCallContext, lab: &Lab, value: &Dynamic) -> RhaiResult<Rc<Node>> {
    if let Some(node) = value.clone().try_cast::<NodeRef>() {
        return Ok(node.0);
    }
    if let Ok(name) = value.clone().into_immutable_string() {
        return to_rhai(ctx, lab.node(&name));
    }
    Err(Box::new(EvalAltResult::ErrorMismatchDataType(
        "Node (or a node's name)".into(),
        value.type_name().into(),
        ctx.call_position(),
    )))
}

pub fn link_map(link: &LinkState, links: &[LinkState]) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), link.name.clone().into());
    m.insert("index".into(), (link.index as i64).into());
    m.insert("kind".into(), link.kind.clone().into());
    m.insert("mac".into(), link.mac.clone().into());
    m.insert("up".into(), link.admin_up.into());
    m.insert("state".into(), link.oper.clone().into());
    m.insert("carrier".into(), link.carrier.into());
    m.insert("mtu".into(), (link.mtu as i64).into());
    let master = link
        .master
        .and_then(|i| links.iter().find(|l| l.index == i))
        .map(|l| l.name.clone());
    m.insert(
        "master".into(),
        master.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
    );
    m.insert(
        "peer_ifindex".into(),
        link.peer_index
            .map(|i| Dynamic::from(i as i64))
            .unwrap_or(Dynamic::UNIT),
    );
    m.insert(
        "port_state".into(),
        link.port_state
            .clone()
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT),
    );
    m
}
