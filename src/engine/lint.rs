//! Static checks before anything touches the kernel: every function a lab calls must
//! exist, so a typo in step 5 fails at once instead of after building steps 1-4.

use std::collections::BTreeSet;

use rhai::{ASTNode, Expr, Stmt, AST};

use super::api;
use super::diagnose::{LabDiagnostic, Source, Verdict};

/// Names callable from a lab: netlab's functions, Rhai's standard library and the
/// script's own functions.
fn known_functions(ast: &AST) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = api::FUNCTIONS.iter().map(|f| f.name.to_string()).collect();
    for sig in super::base_engine().gen_fn_signatures(true) {
        if let Some(name) = sig.split('(').next() {
            known.insert(name.trim().to_string());
        }
    }
    for f in ast.iter_functions() {
        known.insert(f.name.to_string());
    }
    // Keywords that parse as calls.
    for k in ["print", "debug", "type_of", "is_def_var", "is_def_fn", "eval", "Fn", "call", "curry", "is_shared"] {
        known.insert(k.to_string());
    }
    known
}

pub fn unknown_functions(src: &Source, ast: &AST) -> Option<Box<LabDiagnostic>> {
    let known = known_functions(ast);
    let mut found = None;
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos))) | Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => {
                Some((call, pos))
            }
            _ => None,
        };
        if let Some((call, pos)) = call {
            // Method calls (x.f()) and namespaced calls (m::f()) are resolved at run time.
            // Operators (`..=`, `+`, `in`) are calls too; only names can be unknown.
            let is_name = call.name.starts_with(|c: char| c.is_alphabetic() || c == '_');
            if is_name && call.namespace.is_empty() && !known.contains(call.name.as_str()) {
                found = Some((call.name.to_string(), *pos));
                return false;
            }
        }
        true
    });
    let (name, pos) = found?;
    let mut d = src.diagnostic_at(pos, "netlab::unknown_function", format!("unknown function {name}()"));
    d.help = api::suggest(&name).map(|s| format!("did you mean {s}?"));
    d.verdict = Verdict::ScriptError;
    Some(Box::new(d))
}
