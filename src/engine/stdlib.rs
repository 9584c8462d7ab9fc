//! The stdlib: Rhai modules embedded in the binary, for `import "docker" as docker;`.
//! Any other import path is read as a file relative to the lab.

use std::path::PathBuf;

use rhai::module_resolvers::FileModuleResolver;
use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

/// (name, source) of each embedded module.
pub const MODULES: &[(&str, &str)] =
    &[("internet", include_str!("../../stdlib/internet.rhai")), ("docker", include_str!("../../stdlib/docker.rhai"))];

pub struct StdlibResolver {
    files: FileModuleResolver,
}

impl StdlibResolver {
    /// `lab_dir`: where relative imports are looked up.
    pub fn new(lab_dir: PathBuf) -> Self {
        StdlibResolver { files: FileModuleResolver::new_with_path(lab_dir) }
    }
}

impl ModuleResolver for StdlibResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        match MODULES.iter().find(|(name, _)| *name == path) {
            Some((name, text)) => {
                let mut ast = engine
                    .compile(*text)
                    .map_err(|e| Box::new(EvalAltResult::ErrorInModule(name.to_string(), Box::new(e.into()), pos)))?;
                ast.set_source(*name);
                let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
                    .map_err(|e| Box::new(EvalAltResult::ErrorInModule(name.to_string(), e, pos)))?;
                Ok(Shared::new(module))
            }
            None => self.files.resolve(engine, source, path, pos),
        }
    }
}
