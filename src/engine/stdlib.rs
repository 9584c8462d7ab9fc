//! The stdlib: Rhai modules embedded in the binary, for `import "docker" as docker;`.
//! Any other import path is read as a file relative to the lab. Imports that come
//! back to a module still being loaded (a.rhai imports b.rhai imports a.rhai) are an
//! error naming the cycle, not an endless recursion.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use netlab_runtime::Error;
use rhai::module_resolvers::FileModuleResolver;
use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

use super::values::{failure, Failure};

/// (name, source) of each embedded module.
pub const MODULES: &[(&str, &str)] =
    &[("internet", include_str!("../../stdlib/internet.rhai")), ("docker", include_str!("../../stdlib/docker.rhai"))];

pub struct StdlibResolver {
    files: FileModuleResolver,
    lab_dir: PathBuf,
    /// The lab, then each module being loaded, outermost first: (key, name shown).
    loading: RefCell<Vec<(PathBuf, String)>>,
}

impl StdlibResolver {
    /// `lab`: the lab's file; relative imports are looked up in its folder.
    pub fn new(lab: &Path) -> Self {
        let lab_dir = lab.parent().map(Path::to_path_buf).unwrap_or_default();
        let shown = lab.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        StdlibResolver {
            files: FileModuleResolver::new_with_path(lab_dir.clone()),
            loading: RefCell::new(vec![(canonical(lab), shown)]),
            lab_dir,
        }
    }

    /// What identifies a module while it loads, and how the cycle names it.
    fn key(&self, path: &str) -> (PathBuf, String) {
        if MODULES.iter().any(|(name, _)| *name == path) {
            return (PathBuf::from(format!("stdlib:{path}")), format!("\"{path}\" (netlab's stdlib)"));
        }
        let file = self.files.get_file_path(path, None);
        let shown = file.strip_prefix(&self.lab_dir).unwrap_or(&file).display().to_string();
        (canonical(&file), shown)
    }

    fn load(
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

/// The file's real path when it has one (so `./a` and `a` are one module).
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

impl ModuleResolver for StdlibResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let (key, shown) = self.key(path);
        let cycle = {
            let loading = self.loading.borrow();
            loading.iter().position(|(k, _)| *k == key).map(|start| {
                let mut names: Vec<&str> = loading[start..].iter().map(|(_, s)| s.as_str()).collect();
                names.push(&shown);
                names.join(" → ")
            })
        };
        if let Some(cycle) = cycle {
            return Err(failure(Failure::Error(Rc::new(Error::ImportCycle { cycle })), pos));
        }
        self.loading.borrow_mut().push((key, shown));
        let module = self.load(engine, source, path, pos);
        self.loading.borrow_mut().pop();
        module
    }
}
