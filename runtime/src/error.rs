//! One error type for everything that touches the kernel. Each variant names the
//! operation, the node and the object it concerns, keeps its cause, and carries a
//! stable code and a help line (DESIGN.md, decision 4).

use std::io;

use miette::Diagnostic;

/// What kind of failure this is, which decides netlab's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The lab asked for something wrong (bad name, bad address, unknown object).
    Script,
    /// The machine cannot do what the lab asks (no privileges, missing kernel feature or tool).
    Environment,
}

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    #[error("invalid interface name {name:?}: {reason}")]
    #[diagnostic(
        code(netlab::bad_name),
        help("Linux interface names are 1 to 15 bytes, without '/', ':' or spaces, e.g. \"veth0\"")
    )]
    BadLinkName { name: String, reason: String },

    #[error("invalid node name {name:?}: {reason}")]
    #[diagnostic(code(netlab::bad_name), help("node names are 1 to 64 characters: letters, digits, '-', '_' and '.'"))]
    BadNodeName { name: String, reason: String },

    #[error("invalid {expected} {value:?}: {reason}")]
    #[diagnostic(code(netlab::bad_address))]
    BadAddress {
        value: String,
        expected: &'static str,
        reason: String,
        #[help]
        help: Option<String>,
    },

    #[error("there is no node named {name:?}")]
    #[diagnostic(code(netlab::no_such_node))]
    NoSuchNode {
        name: String,
        #[help]
        help: Option<String>,
    },

    #[error("a node named {name:?} already exists")]
    #[diagnostic(
        code(netlab::node_exists),
        help("each netns() needs its own name; keep the handle netns() returned and reuse it")
    )]
    NodeExists { name: String },

    #[error("{node} has no link named {link:?}")]
    #[diagnostic(code(netlab::no_such_link))]
    NoSuchLink {
        node: String,
        link: String,
        #[help]
        help: Option<String>,
    },

    /// An op the backend held back to merge with the next ones failed when it was
    /// finally applied: `origin` is the caller's label for it (the engine passes the
    /// op's line and column), so the error can point there.
    #[error("{source}")]
    #[diagnostic(code(netlab::held))]
    Held { origin: (u16, u16), source: Box<Error> },

    #[error("{op} {object} in {node}: {source}")]
    #[diagnostic(code(netlab::kernel))]
    Kernel {
        op: &'static str,
        node: String,
        object: String,
        #[source]
        source: io::Error,
        #[help]
        help: Option<String>,
    },

    #[error("invalid sysctl {key:?}: {reason}")]
    #[diagnostic(code(netlab::bad_sysctl), help("only net.* keys can be set per node, e.g. \"net.ipv4.ip_forward\""))]
    BadSysctl { key: String, reason: String },

    /// A sysctl that exists only while a kernel module is loaded (net.bridge.* needs
    /// br_netfilter): the machine lacks it, the lab is not wrong.
    #[error("sysctl {key:?} does not exist here: {module} is not loaded")]
    #[diagnostic(code(netlab::missing_kernel_module))]
    MissingModule {
        key: String,
        module: &'static str,
        #[help]
        help: Option<String>,
    },

    /// The kernel refused an op because it lacks what the op needs (a link kind not
    /// built): the machine's problem, not the lab's.
    #[error("{reason}: creating {object} in {node}")]
    #[diagnostic(code(netlab::missing_kernel_feature))]
    MissingFeature {
        feature: &'static str,
        kconfig: &'static str,
        reason: &'static str,
        node: String,
        object: String,
        #[help]
        help: Option<String>,
    },

    #[error("unknown kernel feature {name:?}")]
    #[diagnostic(code(netlab::unknown_feature))]
    UnknownFeature {
        name: String,
        #[help]
        help: Option<String>,
    },

    /// A feature probe the kernel answered with neither "yes" nor "no, not built":
    /// netlab cannot tell, so the lab is neither run nor skipped.
    #[error("cannot tell whether the kernel has {feature}: {op} in a scratch namespace failed: {source}")]
    #[diagnostic(code(netlab::feature_probe))]
    FeatureProbe {
        feature: &'static str,
        op: String,
        #[source]
        source: io::Error,
        #[help]
        help: Option<String>,
    },

    /// A command `sh()` ran ended with a non-zero status: the lab's command is wrong
    /// for this network (as a failing line stops a tutorial reader).
    #[error("`{command}` in {node} failed with exit status {status}")]
    #[diagnostic(code(netlab::command_failed))]
    CommandFailed {
        command: String,
        node: String,
        /// Its exit status, then ":" and the last lines of its stderr, if any.
        status: String,
        #[help]
        help: Option<String>,
    },

    #[error("program {program:?} not found in PATH")]
    #[diagnostic(code(netlab::program_not_found))]
    ProgramNotFound {
        program: String,
        #[help]
        help: Option<String>,
    },

    /// A command line exec_in cannot run as written (unterminated quote, empty, NUL byte).
    #[error("cannot run {command:?}: {reason}")]
    #[diagnostic(
        code(netlab::bad_command),
        help("write the command as you would type it in a shell, e.g. \"ip -br link\" or \"echo 'a b'\"")
    )]
    BadCommand { command: String, reason: String },

    /// A number given to a function (an option such as `timeout`, a count, a port)
    /// outside what it accepts.
    #[error("{option} {value}: {reason}")]
    #[diagnostic(code(netlab::bad_option))]
    BadOption {
        option: String,
        value: String,
        reason: String,
        #[help]
        help: Option<String>,
    },

    /// The kernel did not answer a netlink request: the machine is overloaded or
    /// stuck, not the lab wrong.
    #[error("{op} in {node}: the kernel did not answer within {seconds:.0} s")]
    #[diagnostic(
        code(netlab::netlink_timeout),
        help("the machine may be overloaded; on a slow machine raise every deadline with --slow-factor")
    )]
    NetlinkTimeout { op: String, node: String, seconds: f64 },

    /// Modules that import each other: `cycle` is the chain of files, the first
    /// repeated at its end.
    #[error("import cycle: {cycle}")]
    #[diagnostic(
        code(netlab::import_cycle),
        help("a module cannot import, directly or through others, a file that imports it; move what both need into a third module")
    )]
    ImportCycle { cycle: String },

    #[error("{what} in {node} did not finish within {seconds:.1} s")]
    #[diagnostic(code(netlab::timeout), help("raise the timeout with #{{timeout: SECONDS}}, or check why it hangs"))]
    Timeout { what: String, node: String, seconds: f64 },

    #[error("cannot create netlab's sandbox: {reason}")]
    #[diagnostic(code(netlab::sandbox))]
    Sandbox {
        reason: String,
        #[help]
        help: Option<String>,
    },

    #[error("{op}: {source}")]
    #[diagnostic(code(netlab::io))]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },

    /// A value only the kernel holds, asked of the model (`netlab plan`, `check`).
    #[error("the plan cannot know {what}")]
    #[diagnostic(
        code(netlab::not_in_plan),
        help("it depends on the machine, not on the lab; `netlab run` reads it from the kernel")
    )]
    NotInPlan { what: String },

    /// An argument a function cannot use, said in the function's own words (an
    /// unknown option, a malformed URL or host name): the lab's mistake, not its `throw`.
    #[error("{message}")]
    #[diagnostic(code(netlab::bad_argument))]
    BadArgument { message: String },

    #[error("interrupted")]
    #[diagnostic(code(netlab::interrupted))]
    Interrupted,
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Sandbox { .. }
            | Error::Io { .. }
            | Error::Interrupted
            | Error::MissingModule { .. }
            | Error::MissingFeature { .. }
            | Error::FeatureProbe { .. }
            | Error::NotInPlan { .. }
            | Error::NetlinkTimeout { .. } => ErrorClass::Environment,
            Error::ProgramNotFound { program, .. } if crate::packages::package_for(program).is_some() => {
                ErrorClass::Environment
            }
            Error::Held { source, .. } => source.class(),
            Error::Kernel { source, .. } => match source.raw_os_error() {
                Some(libc::EOPNOTSUPP) | Some(libc::EAFNOSUPPORT) | Some(libc::EPROTONOSUPPORT) => {
                    ErrorClass::Environment
                }
                _ => ErrorClass::Script,
            },
            _ => ErrorClass::Script,
        }
    }

    /// A kernel error for `op` on `object` in `node`, with a help line chosen by errno.
    pub fn kernel(op: &'static str, node: &str, object: impl Into<String>, source: io::Error) -> Error {
        let object = object.into();
        let help = match source.raw_os_error() {
            Some(libc::EEXIST) => {
                Some(format!("{object} already exists in {node}; choose another name or remove it first"))
            }
            Some(libc::ENODEV) => Some(format!("{object} does not exist in {node}")),
            // What the kernel answers for a route (or rule) that is not there.
            Some(libc::ESRCH) => Some(format!(
                "{object} does not exist in {node} (\"No such process\" is the kernel's way of saying so)"
            )),
            Some(libc::EPERM) | Some(libc::EACCES) => {
                Some("netlab needs root, or unprivileged user namespaces, to change the network".into())
            }
            Some(libc::ENETUNREACH) => Some(format!("{node} has no route there; add one with route()")),
            Some(libc::EINVAL) => Some("the kernel rejected the request as invalid; check the arguments".into()),
            Some(libc::EOPNOTSUPP) => Some("this kernel does not support that operation".into()),
            Some(libc::EBUSY) => Some(format!("{object} is in use in {node}")),
            _ => None,
        };
        Error::Kernel { op, node: node.to_string(), object, source, help }
    }

    /// What the kernel lacks for `feature`, found when it refused to make `object`.
    pub fn missing_feature(feature: crate::model::Feature, node: &str, object: &str) -> Error {
        Error::MissingFeature {
            feature: feature.name(),
            kconfig: feature.kconfig(),
            reason: feature.absent_reason(),
            node: node.to_string(),
            object: object.to_string(),
            help: Some(format!(
                "this kernel was built without {}; run the lab on a kernel that has it, or declare \
                 requires(\"{}\") at its top so that it is skipped where the kernel lacks it",
                feature.kconfig(),
                feature.name()
            )),
        }
    }

    pub fn io(op: impl Into<String>, source: io::Error) -> Error {
        Error::Io { op: op.into(), source }
    }
}

/// Converts an rtnetlink error into the io::Error it stands for.
pub(crate) fn nl_to_io(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => match msg.code {
            Some(code) => io::Error::from_raw_os_error(-code.get()),
            None => io::Error::other("netlink error without code"),
        },
        other => io::Error::other(other.to_string()),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// "did you mean" list: names from `known`, closest first.
pub fn known_names_help(kind: &str, known: &[String]) -> Option<String> {
    if known.is_empty() {
        None
    } else {
        Some(format!("{kind}: {}", known.join(", ")))
    }
}
