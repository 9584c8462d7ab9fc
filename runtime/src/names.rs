//! Names validated once at the boundary; the types are what flows inward.

use std::fmt;

use crate::error::{Error, Result};

/// Linux limits interface names to IFNAMSIZ - 1 = 15 bytes.
pub const MAX_LINK_NAME: usize = 15;

/// A valid Linux interface name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkName(String);

impl LinkName {
    pub fn new(name: &str) -> Result<LinkName> {
        let bad = |reason: String| Error::BadLinkName { name: name.to_string(), reason };
        if name.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if name.len() > MAX_LINK_NAME {
            return Err(bad(format!("it is {} bytes long; Linux allows at most {MAX_LINK_NAME}", name.len())));
        }
        if name == "." || name == ".." {
            return Err(bad("'.' and '..' are reserved".into()));
        }
        // netlink carries the name as a C string: a NUL would cut it short there.
        if let Some(c) = name.chars().find(|c| matches!(c, '/' | ':' | '\0') || c.is_whitespace()) {
            return Err(bad(format!("it contains {c:?}")));
        }
        Ok(LinkName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node (namespace) name: it becomes a file under /run/netns, so keep it plain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeName(String);

impl NodeName {
    pub fn new(name: &str) -> Result<NodeName> {
        let bad = |reason: String| Error::BadNodeName { name: name.to_string(), reason };
        if name.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if name.len() > 64 {
            return Err(bad(format!("it is {} characters long", name.len())));
        }
        if name == "." || name == ".." {
            return Err(bad("'.' and '..' are reserved".into()));
        }
        if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
            return Err(bad(format!("it contains {c:?}")));
        }
        Ok(NodeName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A hostname as `hostname NAME` takes it (RFC 1123 letters, digits, '-' and '.').
pub fn check_hostname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return Err(Error::BadNodeName { name: name.to_string(), reason: "not a valid hostname".into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names() {
        assert!(LinkName::new("veth0").is_ok());
        assert!(LinkName::new("fifteen_bytes_x").is_ok());
        let err = LinkName::new("sixteen_bytes_xx").unwrap_err().to_string();
        assert!(err.contains("16 bytes"), "{err}");
        assert!(LinkName::new("").is_err());
        assert!(LinkName::new("a/b").is_err());
        assert!(LinkName::new("a b").is_err());
        assert!(LinkName::new("..").is_err());
        assert!(LinkName::new("a\0b").is_err());
    }

    #[test]
    fn node_names() {
        assert!(NodeName::new("container4").is_ok());
        assert!(NodeName::new("red-1.x_y").is_ok());
        assert!(NodeName::new("../etc").is_err());
        assert!(NodeName::new("a b").is_err());
        assert!(NodeName::new("").is_err());
    }
}
