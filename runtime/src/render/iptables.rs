//! The node's nftables ruleset (`nft -j list ruleset`) as `iptables -t TABLE -S`
//! prints it: every rule IPv4 iptables would meet in that table's hooks, not only
//! netlab's. Pure: no I/O here (runtime/src/lab/firewall.rs reads the kernel).
//!
//! Which chains count: every base chain of family `ip` or `inet` whose type is the
//! table's (`filter` or `nat`), listed under the iptables chain of its hook
//! (prerouting → PREROUTING, ...), and the regular chains they jump to. A family `ip`
//! table named like an iptables table (`filter`, `nat`, `mangle`, `raw`, `security`:
//! the tables iptables-nft itself makes) counts for that table only, with all its
//! regular chains, as `iptables -t TABLE -S` lists them.
//!
//! Rules are rendered the way iptables prints them: `-s`, `-d`, `-i`, `-o`, `-p`
//! first, then the matches in rule order, then the target. iptables-nft stores some
//! matches and targets as xtables extensions (`xt` in the JSON: MASQUERADE, DNAT,
//! `-m conntrack`, `-m addrtype`, ...) whose options `nft -j` does not show; for such
//! a rule the line comes from iptables' own listing of that table when the caller
//! passes one (`iptables-nft -t TABLE -S`, see [`Ruleset::needs_iptables_listing`]).
//! An expression that has no iptables form is never dropped: it is shown as
//! `-m comment --comment "nft: <expression as JSON>"`, so a check on an exact rule
//! fails instead of passing on a look-alike.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IptTable {
    Filter,
    Nat,
}

impl IptTable {
    pub fn parse(name: &str) -> Option<IptTable> {
        match name {
            "filter" => Some(IptTable::Filter),
            "nat" => Some(IptTable::Nat),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IptTable::Filter => "filter",
            IptTable::Nat => "nat",
        }
    }

    /// The built-in chains, in the order `iptables -S` prints them.
    pub fn builtin_chains(self) -> &'static [&'static str] {
        match self {
            IptTable::Filter => &["INPUT", "FORWARD", "OUTPUT"],
            IptTable::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        }
    }
}

/// The tables iptables-nft makes in family `ip`, one per `iptables -t` table.
const IPTABLES_TABLES: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];

/// The iptables chain a hook stands for, in iptables' order of hooks.
const HOOKS: [(&str, &str); 5] = [
    ("prerouting", "PREROUTING"),
    ("input", "INPUT"),
    ("forward", "FORWARD"),
    ("output", "OUTPUT"),
    ("postrouting", "POSTROUTING"),
];

#[derive(Debug, thiserror::Error)]
#[error("`nft -j list ruleset` printed something netlab cannot read: {0}")]
pub struct ParseError(String);

#[derive(Debug)]
struct Chain {
    family: String,
    table: String,
    name: String,
    base: Option<BaseChain>,
}

/// What makes a chain a base chain.
#[derive(Debug)]
struct BaseChain {
    hook: String,
    kind: String,
    prio: i64,
    policy: String,
}

#[derive(Debug)]
struct Rule {
    family: String,
    table: String,
    chain: String,
    expr: Vec<Value>,
}

/// The parts of `nft -j list ruleset` that iptables can see.
#[derive(Debug)]
pub struct Ruleset {
    chains: Vec<Chain>,
    rules: Vec<Rule>,
}

fn str_field(obj: &Value, key: &str) -> Result<String, ParseError> {
    obj.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| ParseError(format!("no {key:?} in {obj}")))
}

impl Ruleset {
    pub fn parse(nft_json: &str) -> Result<Ruleset, ParseError> {
        // An empty ruleset may print nothing at all.
        if nft_json.trim().is_empty() {
            return Ok(Ruleset { chains: Vec::new(), rules: Vec::new() });
        }
        let doc: Value = serde_json::from_str(nft_json).map_err(|e| ParseError(e.to_string()))?;
        let items =
            doc.get("nftables").and_then(Value::as_array).ok_or_else(|| ParseError("no \"nftables\" array".into()))?;
        let mut chains = Vec::new();
        let mut rules = Vec::new();
        for item in items {
            if let Some(c) = item.get("chain") {
                let family = str_field(c, "family")?;
                if family != "ip" && family != "inet" {
                    continue;
                }
                let base = match c.get("hook").and_then(Value::as_str) {
                    Some(hook) => Some(BaseChain {
                        hook: hook.to_string(),
                        kind: str_field(c, "type")?,
                        prio: c.get("prio").and_then(Value::as_i64).unwrap_or(0),
                        policy: c.get("policy").and_then(Value::as_str).unwrap_or("accept").to_string(),
                    }),
                    None => None,
                };
                chains.push(Chain { family, table: str_field(c, "table")?, name: str_field(c, "name")?, base });
            } else if let Some(r) = item.get("rule") {
                let family = str_field(r, "family")?;
                if family != "ip" && family != "inet" {
                    continue;
                }
                let expr = r.get("expr").and_then(Value::as_array).cloned().unwrap_or_default();
                rules.push(Rule { family, table: str_field(r, "table")?, chain: str_field(r, "chain")?, expr });
            }
        }
        Ok(Ruleset { chains, rules })
    }

    /// Whether `table` holds a rule made with an xtables extension, whose options
    /// only iptables' own listing shows: then pass `iptables-nft -t TABLE -S` to
    /// [`Ruleset::iptables_lines`].
    pub fn needs_iptables_listing(&self, table: IptTable) -> bool {
        self.rules
            .iter()
            .any(|r| r.family == "ip" && r.table == table.name() && r.expr.iter().any(|e| e.get("xt").is_some()))
    }

    /// The lines `iptables -t TABLE -S` would print for the whole ruleset.
    /// `iptables_listing` is iptables' own `-S` output for the table, used for the
    /// rules iptables made with xtables extensions (see the module comment).
    pub fn iptables_lines(&self, table: IptTable, iptables_listing: Option<&str>) -> Vec<String> {
        let chains = self.selected_chains(table);
        let mut lines = Vec::new();
        for name in table.builtin_chains() {
            let drop = chains
                .iter()
                .any(|c| c.base.as_ref().is_some_and(|b| hook_chain(&b.hook) == Some(*name) && b.policy == "drop"));
            lines.push(format!("-P {name} {}", if drop { "DROP" } else { "ACCEPT" }));
        }
        let xt_lines = iptables_listing.map(rules_by_chain).unwrap_or_default();

        // Base chains under their hook's name, in iptables' order of chains (the
        // table's own first), each hook's chains in the order the kernel runs them.
        let builtin = table.builtin_chains();
        let others = HOOKS.iter().map(|(_, n)| *n).filter(|n| !builtin.contains(n));
        let order: Vec<&str> = builtin.iter().copied().chain(others).collect();
        let mut rule_lines = Vec::new();
        for name in order {
            let mut on_hook: Vec<&Chain> = chains
                .iter()
                .copied()
                .filter(|c| c.base.as_ref().is_some_and(|b| hook_chain(&b.hook) == Some(name)))
                .collect();
            on_hook.sort_by_key(|c| c.base.as_ref().map(|b| b.prio));
            for c in on_hook {
                rule_lines.extend(self.chain_lines(c, name, table, &xt_lines));
            }
        }
        // Regular chains, by name as iptables-nft sorts them.
        let mut regular: Vec<&Chain> = chains.iter().copied().filter(|c| c.base.is_none()).collect();
        regular.sort_by(|a, b| a.name.cmp(&b.name));
        let mut declared = BTreeSet::new();
        for c in &regular {
            if declared.insert(c.name.as_str()) {
                lines.push(format!("-N {}", c.name));
            }
            rule_lines.extend(self.chain_lines(c, &c.name, table, &xt_lines));
        }
        lines.extend(rule_lines);
        lines
    }

    /// The `-A` lines of one chain, listed as iptables chain `shown_as`.
    fn chain_lines(
        &self,
        chain: &Chain,
        shown_as: &str,
        table: IptTable,
        xt_lines: &BTreeMap<String, Vec<String>>,
    ) -> Vec<String> {
        let rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.family == chain.family && r.table == chain.table && r.chain == chain.name)
            .collect();
        // iptables' lines stand for these rules only if they are the same rules:
        // its own table, and as many lines as the kernel holds rules.
        let iptables_own = chain.family == "ip" && chain.table == table.name();
        let theirs = xt_lines.get(&chain.name).filter(|l| iptables_own && l.len() == rules.len());
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| match theirs.filter(|_| r.expr.iter().any(|e| e.get("xt").is_some())) {
                Some(lines) => lines[i].clone(),
                None => render_rule(shown_as, &r.expr),
            })
            .collect()
    }

    /// The chains `iptables -t TABLE` sees: base chains by type, iptables' own
    /// table whole, and the regular chains reachable from the base chains.
    fn selected_chains(&self, table: IptTable) -> Vec<&Chain> {
        let mut selected: Vec<&Chain> = Vec::new();
        let mut pending: Vec<(&str, &str, String)> = Vec::new();
        for c in &self.chains {
            let iptables_table = (c.family == "ip").then(|| IPTABLES_TABLES.iter().find(|t| **t == c.table)).flatten();
            let wanted = match (iptables_table, &c.base) {
                (Some(t), _) => *t == table.name(),
                (None, Some(b)) => b.kind == table.name() && hook_chain(&b.hook).is_some(),
                (None, None) => false,
            };
            if wanted {
                selected.push(c);
                pending.extend(self.jump_targets(c));
            }
        }
        while let Some((family, tbl, name)) = pending.pop() {
            let found = self.chains.iter().find(|c| c.family == family && c.table == tbl && c.name == name);
            if let Some(c) = found.filter(|c| !selected.iter().any(|s| std::ptr::eq(*s, *c))) {
                selected.push(c);
                pending.extend(self.jump_targets(c));
            }
        }
        // Keep the ruleset's order: the listing must not depend on the search.
        selected.sort_by_key(|c| self.chains.iter().position(|x| std::ptr::eq(x, *c)));
        selected
    }

    fn jump_targets<'a>(&'a self, chain: &'a Chain) -> Vec<(&'a str, &'a str, String)> {
        self.rules
            .iter()
            .filter(|r| r.family == chain.family && r.table == chain.table && r.chain == chain.name)
            .flat_map(|r| r.expr.iter())
            .filter_map(|e| e.get("jump").or_else(|| e.get("goto")))
            .filter_map(|j| j.get("target").and_then(Value::as_str))
            .map(|t| (chain.family.as_str(), chain.table.as_str(), t.to_string()))
            .collect()
    }
}

/// Convenience: `nft -j list ruleset` output to `iptables -t TABLE -S` lines.
pub fn iptables_save_lines(
    nft_json: &str,
    table: IptTable,
    iptables_listing: Option<&str>,
) -> Result<Vec<String>, ParseError> {
    Ok(Ruleset::parse(nft_json)?.iptables_lines(table, iptables_listing))
}

fn hook_chain(hook: &str) -> Option<&'static str> {
    HOOKS.iter().find(|(h, _)| *h == hook).map(|(_, n)| *n)
}

/// iptables' `-A CHAIN ...` lines, grouped by chain in order.
fn rules_by_chain(listing: &str) -> BTreeMap<String, Vec<String>> {
    let mut by_chain: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in listing.lines() {
        let mut words = line.split_whitespace();
        if let (Some("-A"), Some(chain)) = (words.next(), words.next()) {
            by_chain.entry(chain.to_string()).or_default().push(line.trim_end().to_string());
        }
    }
    by_chain
}

/// One rule under construction, in iptables' print order.
#[derive(Default)]
struct Line {
    src: Option<String>,
    dst: Option<String>,
    iif: Option<String>,
    oif: Option<String>,
    proto: Option<String>,
    /// `-m ...` parts in rule order; the port match is `ports` at index `ports_at`.
    matches: Vec<String>,
    ports: Option<(String, Vec<String>, Vec<String>)>,
    ports_at: usize,
    target: Option<String>,
}

/// Fills an iptables option that a rule can have only once.
fn set_once(slot: &mut Option<String>, value: String) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value);
    true
}

fn neg(op: &str) -> &'static str {
    if op == "!=" {
        "! "
    } else {
        ""
    }
}

/// `ip saddr` etc. as iptables prints it: a single address is a /32.
fn address(v: &Value) -> Option<String> {
    match v {
        Value::String(a) if a.parse::<std::net::Ipv4Addr>().is_ok() => Some(format!("{a}/32")),
        Value::Object(_) => {
            let p = v.get("prefix")?;
            let addr = p.get("addr")?.as_str()?;
            addr.parse::<std::net::Ipv4Addr>().ok()?;
            Some(format!("{addr}/{}", p.get("len")?.as_u64()?))
        }
        _ => None,
    }
}

/// A port or a range as iptables prints them (`80`, `67:68`).
fn port(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::Object(_) => {
            let r = v.get("range")?.as_array()?;
            Some(format!("{}:{}", r.first()?.as_u64()?, r.get(1)?.as_u64()?))
        }
        _ => None,
    }
}

/// A protocol as `-p` shows it: nft's name, or its number.
fn protocol(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        _ => None,
    }
}

/// An interface name; nft's wildcard `eth*` is iptables' `eth+`.
fn interface(v: &Value) -> Option<String> {
    let name = v.as_str()?;
    Some(match name.strip_suffix('*') {
        Some(stem) if !stem.ends_with('\\') => format!("{stem}+"),
        _ => name.to_string(),
    })
}

/// `ct state` values in the order `-m conntrack --ctstate` prints them.
fn ct_states(v: &Value) -> Option<String> {
    let given: Vec<&str> = match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().map(Value::as_str).collect::<Option<_>>()?,
        _ => return None,
    };
    const ORDER: [&str; 5] = ["invalid", "new", "related", "established", "untracked"];
    if given.iter().any(|s| !ORDER.contains(s)) {
        return None;
    }
    let states: Vec<String> = ORDER.iter().filter(|s| given.contains(s)).map(|s| s.to_ascii_uppercase()).collect();
    Some(states.join(","))
}

/// An expression with no iptables form, shown so that no check can mistake the
/// rule for one without it.
fn untranslated(expr: &Value) -> String {
    let text = format!("nft: {expr}").replace('\\', "\\\\").replace('"', "\\\"");
    format!("-m comment --comment \"{text}\"")
}

impl Line {
    /// A `match` expression; false if it has no iptables form.
    fn add_match(&mut self, m: &Value) -> bool {
        let (Some(op), Some(left), Some(right)) = (m.get("op").and_then(Value::as_str), m.get("left"), m.get("right"))
        else {
            return false;
        };
        if op != "==" && op != "!=" && !(op == "in" && left.get("ct").is_some()) {
            return false;
        }
        let n = neg(op);
        if let Some(p) = left.get("payload") {
            let (proto, field) = (p.get("protocol").and_then(Value::as_str), p.get("field").and_then(Value::as_str));
            return match (proto, field) {
                (Some("ip"), Some(f @ ("saddr" | "daddr"))) => {
                    let Some(a) = address(right) else { return false };
                    let slot = if f == "saddr" { &mut self.src } else { &mut self.dst };
                    set_once(slot, format!("{n}{a}"))
                }
                (Some("ip"), Some("protocol")) => self.set_proto(n, right),
                (Some(l4 @ ("tcp" | "udp")), Some(f @ ("sport" | "dport"))) => {
                    let Some(p) = port(right) else { return false };
                    self.add_port(l4, f, format!("{n}--{f} {p}"))
                }
                _ => false,
            };
        }
        if let Some(key) = left.get("meta").and_then(|m| m.get("key")).and_then(Value::as_str) {
            return match key {
                "iifname" | "oifname" => {
                    let Some(i) = interface(right) else { return false };
                    let slot = if key == "iifname" { &mut self.iif } else { &mut self.oif };
                    set_once(slot, format!("{n}{i}"))
                }
                "l4proto" => self.set_proto(n, right),
                // Always true for the IPv4 packets iptables sees.
                "nfproto" | "protocol" => op == "==" && (right == "ipv4" || right == "ip"),
                _ => false,
            };
        }
        if left.get("ct").and_then(|c| c.get("key")).and_then(Value::as_str) == Some("state") {
            let Some(states) = ct_states(right) else { return false };
            self.matches.push(format!("-m conntrack {n}--ctstate {states}"));
            return true;
        }
        if let Some(fib) = left.get("fib") {
            let flags = fib.get("flags").and_then(Value::as_array);
            let which = match flags.map(|f| f.iter().filter_map(Value::as_str).collect::<Vec<_>>()).as_deref() {
                Some(["daddr"]) => "dst",
                Some(["saddr"]) => "src",
                _ => return false,
            };
            let (Some("type"), Some(kind)) = (fib.get("result").and_then(Value::as_str), right.as_str()) else {
                return false;
            };
            self.matches.push(format!("-m addrtype {n}--{which}-type {}", kind.to_ascii_uppercase()));
            return true;
        }
        false
    }

    fn set_proto(&mut self, n: &str, v: &Value) -> bool {
        let Some(p) = protocol(v) else { return false };
        let p = format!("{n}{p}");
        match &self.proto {
            Some(old) => *old == p,
            None => {
                self.proto = Some(p);
                true
            }
        }
    }

    /// `tcp dport 80` is `-p tcp -m tcp --dport 80`; sport and dport share one `-m tcp`.
    fn add_port(&mut self, l4: &str, field: &str, text: String) -> bool {
        match &mut self.ports {
            Some((p, sports, dports)) if p == l4 => {
                if field == "sport" { sports } else { dports }.push(text);
                true
            }
            Some(_) => false,
            None => {
                let (sports, dports) = if field == "sport" { (vec![text], vec![]) } else { (vec![], vec![text]) };
                self.ports = Some((l4.to_string(), sports, dports));
                self.ports_at = self.matches.len();
                self.matches.push(String::new());
                true
            }
        }
    }

    /// A statement (verdict, NAT, ...); false if it has no iptables form.
    fn add_statement(&mut self, e: &Value) -> bool {
        let Some((key, v)) = e.as_object().and_then(|o| (o.len() == 1).then(|| o.iter().next()).flatten()) else {
            return false;
        };
        let target = match key.as_str() {
            "accept" => "-j ACCEPT".to_string(),
            "drop" => "-j DROP".to_string(),
            "return" => "-j RETURN".to_string(),
            "jump" | "goto" => {
                let Some(t) = v.get("target").and_then(Value::as_str) else { return false };
                format!("-{} {t}", if key == "jump" { 'j' } else { 'g' })
            }
            "reject" => match reject_with(v) {
                Some(with) => format!("-j REJECT --reject-with {with}"),
                None => return false,
            },
            "masquerade" if v.is_null() => "-j MASQUERADE".to_string(),
            "dnat" | "snat" => {
                let Some(to) = nat_to(v) else { return false };
                let (name, opt) = if key == "dnat" { ("DNAT", "destination") } else { ("SNAT", "source") };
                format!("-j {name} --to-{opt} {to}")
            }
            "redirect" if v.is_null() => "-j REDIRECT".to_string(),
            "log" if v.is_null() => "-j LOG".to_string(),
            _ => return false,
        };
        set_once(&mut self.target, target)
    }

    fn render(mut self, chain: &str) -> String {
        if let Some((l4, sports, dports)) = self.ports.take() {
            if self.proto.is_none() {
                self.proto = Some(l4.clone());
            }
            let opts: Vec<String> = sports.into_iter().chain(dports).collect();
            self.matches[self.ports_at] = format!("-m {l4} {}", opts.join(" "));
        }
        let mut s = format!("-A {chain}");
        let header = [("s", self.src), ("d", self.dst), ("i", self.iif), ("o", self.oif), ("p", self.proto)];
        for (flag, value) in header {
            if let Some(v) = value {
                let (n, v) = match v.strip_prefix("! ") {
                    Some(v) => ("! ", v.to_string()),
                    None => ("", v),
                };
                s += &format!(" {n}-{flag} {v}");
            }
        }
        for m in self.matches.iter().chain(&self.target) {
            s.push(' ');
            s += m;
        }
        s
    }
}

/// `--reject-with` for nft's reject statement.
fn reject_with(v: &Value) -> Option<String> {
    if v.is_null() {
        return Some("icmp-port-unreachable".into());
    }
    let kind = v.get("type").and_then(Value::as_str)?;
    if kind == "tcp reset" {
        return Some("tcp-reset".into());
    }
    let code = v.get("expr").and_then(Value::as_str).unwrap_or("port-unreachable");
    let name = match (kind, code) {
        ("icmp" | "icmpx", "port-unreachable" | "host-unreachable" | "admin-prohibited") => code,
        ("icmp" | "icmpx", "net-unreachable") | ("icmpx", "no-route") => "net-unreachable",
        ("icmp", "prot-unreachable") => "proto-unreachable",
        ("icmp", "net-prohibited" | "host-prohibited") => code,
        _ => return None,
    };
    Some(format!("icmp-{name}"))
}

/// `--to-destination` / `--to-source` for a dnat/snat statement to one IPv4
/// address (or range), with an optional port (or range).
fn nat_to(v: &Value) -> Option<String> {
    let obj = v.as_object()?;
    if obj.keys().any(|k| !["addr", "port", "family"].contains(&k.as_str())) {
        return None;
    }
    if obj.get("family").is_some_and(|f| f != "ip") {
        return None;
    }
    let one = |a: &Value| a.as_str().filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok()).map(str::to_string);
    let addr = obj.get("addr")?;
    let mut to = match addr.get("range").and_then(Value::as_array) {
        Some(r) => format!("{}-{}", one(r.first()?)?, one(r.get(1)?)?),
        None => one(addr)?,
    };
    if let Some(p) = obj.get("port") {
        to += &format!(":{}", port(p)?.replace(':', "-"));
    }
    Some(to)
}

/// One nft rule as an iptables `-A` line (see the module comment).
fn render_rule(chain: &str, exprs: &[Value]) -> String {
    let mut line = Line::default();
    for e in exprs {
        if e.get("counter").is_some() {
            continue;
        }
        let done = match e.get("match") {
            Some(m) => line.add_match(m),
            None => line.add_statement(e),
        };
        if !done {
            line.matches.push(untranslated(e));
        }
    }
    line.render(chain)
}

#[cfg(test)]
mod tests {
    //! Fixtures: real `nft -j list ruleset` and `iptables(-nft) -S` output captured
    //! in netlab sandboxes (runtime/tests/fixtures/iptables/README.md).
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/iptables/", $name))
        };
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    fn render(json: &str, table: IptTable, listing: Option<&str>) -> Vec<String> {
        iptables_save_lines(json, table, listing).expect("parses")
    }

    #[test]
    fn netlab_own_rules() {
        let json = fixture!("netlab_rules.json");
        let ruleset = Ruleset::parse(json).unwrap();
        assert!(!ruleset.needs_iptables_listing(IptTable::Nat));
        assert!(!ruleset.needs_iptables_listing(IptTable::Filter));
        assert_eq!(
            ruleset.iptables_lines(IptTable::Nat, None),
            [
                "-P PREROUTING ACCEPT",
                "-P INPUT ACCEPT",
                "-P OUTPUT ACCEPT",
                "-P POSTROUTING ACCEPT",
                "-A PREROUTING -i eth0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.15.2:80",
                "-A OUTPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 80 -j DNAT --to-destination 192.168.15.2:80",
                "-A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE",
                "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
            ]
        );
        // inet netlab_filter counts, bridge netlab_bridge does not.
        assert_eq!(
            ruleset.iptables_lines(IptTable::Filter, None),
            [
                "-P INPUT ACCEPT",
                "-P FORWARD DROP",
                "-P OUTPUT ACCEPT",
                "-A FORWARD -s 10.0.0.0/8 -d 10.1.2.3/32 -j ACCEPT"
            ]
        );
    }

    /// Rules made with the real iptables(-nft): with its listing for the rules it
    /// stores as xtables extensions, the lines are exactly what `iptables -S` prints.
    #[test]
    fn iptables_made_rules_list_as_iptables_prints_them() {
        for (name, json, nat, filter) in [
            (
                "iptables_rules",
                fixture!("iptables_rules.json"),
                fixture!("iptables_rules.nat.txt"),
                fixture!("iptables_rules.filter.txt"),
            ),
            (
                "iptables_chains",
                fixture!("iptables_chains.json"),
                fixture!("iptables_chains.nat.txt"),
                fixture!("iptables_chains.filter.txt"),
            ),
        ] {
            for (table, listing) in [(IptTable::Nat, nat), (IptTable::Filter, filter)] {
                assert_eq!(render(json, table, Some(listing)), lines(listing), "{name} {table:?}");
            }
        }
    }

    /// Without iptables' listing, every rule iptables stored natively is still
    /// rendered exactly as iptables prints it; the xtables ones show as nft comments.
    #[test]
    fn native_rules_match_iptables_without_its_listing() {
        for (json, listing, table) in [
            (fixture!("iptables_rules.json"), fixture!("iptables_rules.nat.txt"), IptTable::Nat),
            (fixture!("iptables_rules.json"), fixture!("iptables_rules.filter.txt"), IptTable::Filter),
            (fixture!("iptables_chains.json"), fixture!("iptables_chains.filter.txt"), IptTable::Filter),
        ] {
            assert!(Ruleset::parse(json).unwrap().needs_iptables_listing(table));
            let ours = render(json, table, None);
            let real = lines(listing);
            assert_eq!(ours.len(), real.len(), "{ours:#?}");
            let mut native = 0;
            for (o, r) in ours.iter().zip(&real) {
                if o.contains("-m comment --comment \"nft: {\\\"xt\\\"") {
                    assert!(!r.contains("nft:"), "{r}");
                } else {
                    assert_eq!(o, r);
                    native += 1;
                }
            }
            assert!(native > 4, "{ours:#?}");
        }
        let filter = render(fixture!("iptables_rules.json"), IptTable::Filter, None);
        for expected in [
            "-A FORWARD -s 10.0.0.0/8 -d 10.1.2.3/32 -i br0 -o br0 -j ACCEPT",
            "-A FORWARD -p icmp -j DROP",
            "-A FORWARD -j MYCHAIN",
            "-A INPUT -p udp -m udp --dport 67:68 -j ACCEPT",
            "-A OUTPUT -p gre -j ACCEPT",
        ] {
            assert!(filter.contains(&expected.to_string()), "{expected}\n{filter:#?}");
        }
        let filter = render(fixture!("iptables_chains.json"), IptTable::Filter, None);
        for expected in [
            "-A INPUT -i eth+ -j ACCEPT",
            "-A INPUT -p tcp -m tcp ! --dport 22 -j DROP",
            "-A INPUT -p tcp -m tcp --sport 1000:2000 --dport 22 -j ACCEPT",
            "-A INPUT ! -p udp -j ACCEPT",
            "-A INPUT -p 200 -j ACCEPT",
            "-A INPUT -g ALPHA",
            "-A ZED -j RETURN",
        ] {
            assert!(filter.contains(&expected.to_string()), "{expected}\n{filter:#?}");
        }
    }

    /// An xtables rule without iptables' listing: visible, never a bare look-alike.
    #[test]
    fn xt_rule_without_listing_is_not_a_lookalike() {
        let nat = render(fixture!("mixed.json"), IptTable::Nat, None);
        let rule = nat.iter().find(|l| l.contains("10.201.0.0/24")).unwrap();
        assert!(rule.starts_with("-A POSTROUTING -s 10.201.0.0/24 -m comment --comment \"nft: "), "{rule}");
        assert!(rule.contains("MASQUERADE"), "{rule}");
        assert!(!nat.contains(&"-A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE".to_string()), "{nat:#?}");
    }

    /// netlab's tables and iptables' own on the same hooks: all rules, in the
    /// order of the ruleset, each as iptables prints it.
    #[test]
    fn netlab_and_iptables_rules_together() {
        let json = fixture!("mixed.json");
        let ruleset = Ruleset::parse(json).unwrap();
        assert!(ruleset.needs_iptables_listing(IptTable::Nat));
        assert!(!ruleset.needs_iptables_listing(IptTable::Filter));
        assert_eq!(
            ruleset.iptables_lines(IptTable::Nat, Some(fixture!("mixed.nat.txt"))),
            [
                "-P PREROUTING ACCEPT",
                "-P INPUT ACCEPT",
                "-P OUTPUT ACCEPT",
                "-P POSTROUTING ACCEPT",
                "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
                "-A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE",
            ]
        );
        assert_eq!(ruleset.iptables_lines(IptTable::Filter, None), lines(fixture!("mixed.filter.txt")));
    }

    /// Tables written with nft by hand: base chains by hook and type, policies,
    /// a reachable user chain (an unreachable one is not listed), `ip raw` left to
    /// `iptables -t raw`, and expressions iptables cannot show.
    #[test]
    fn nft_user_tables() {
        let json = fixture!("nft_user_tables.json");
        let filter = render(json, IptTable::Filter, None);
        let comment = |l: &str, what: &str| l.contains("-m comment --comment \"nft: {") && l.contains(what);
        assert_eq!(filter[..4], ["-P INPUT DROP", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", "-N sub"], "{filter:#?}");
        assert_eq!(
            filter[4..8],
            [
                "-A INPUT -s 1.2.3.4/32 -j REJECT --reject-with icmp-port-unreachable",
                "-A INPUT -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-host-unreachable",
                "-A INPUT ! -d 10.0.0.0/8 -j LOG",
                "-A INPUT -p tcp -j ACCEPT",
            ]
        );
        assert!(filter[8].starts_with("-A INPUT -m comment") && comment(&filter[8], "iif"), "{}", filter[8]);
        assert!(filter[8].ends_with(" -j ACCEPT"), "{}", filter[8]);
        assert_eq!(
            filter[9..12],
            [
                "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A FORWARD -m conntrack --ctstate INVALID -j DROP",
                "-A FORWARD -s 10.0.0.1/32 -j REJECT --reject-with icmp-port-unreachable",
            ]
        );
        assert!(comment(&filter[12], "ip6") && filter[12].ends_with(" -j DROP"), "{}", filter[12]);
        assert!(comment(&filter[13], "443") && filter[13].ends_with(" -j ACCEPT"), "{}", filter[13]);
        assert_eq!(
            filter[14..18],
            [
                "-A FORWARD -p tcp -j REJECT --reject-with tcp-reset",
                "-A FORWARD -j REJECT --reject-with icmp-admin-prohibited",
                "-A FORWARD -j sub",
                "-A sub -i veth+ -j DROP",
            ]
        );
        assert!(comment(&filter[18], "oif") && filter[18].ends_with(" -j ACCEPT"), "{}", filter[18]);
        assert!(comment(&filter[19], "echo-request") && filter[19].ends_with(" -j ACCEPT"), "{}", filter[19]);
        assert_eq!(filter.len(), 20, "{filter:#?}");
        assert!(!filter.iter().any(|l| l.contains("unused") || l.contains("notrack")), "{filter:#?}");

        assert_eq!(
            render(json, IptTable::Nat, None),
            [
                "-P PREROUTING ACCEPT",
                "-P INPUT ACCEPT",
                "-P OUTPUT ACCEPT",
                "-P POSTROUTING ACCEPT",
                "-A PREROUTING -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.0.9:5353",
                "-A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.9",
                "-A POSTROUTING -d 10.9.9.0/24 -j SNAT --to-source 10.0.0.1",
            ]
        );
    }

    /// iptables' listing is used only when it holds the same rules as the kernel.
    #[test]
    fn a_stale_iptables_listing_is_not_used() {
        let stale = "-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.9.0.0/16 -j MASQUERADE\n-A POSTROUTING -j ACCEPT\n";
        let nat = render(fixture!("mixed.json"), IptTable::Nat, Some(stale));
        assert!(!nat.iter().any(|l| l.contains("10.9.0.0")), "{nat:#?}");
        assert!(nat.iter().any(|l| l.starts_with("-A POSTROUTING -s 10.201.0.0/24 -m comment")), "{nat:#?}");
    }

    #[test]
    fn empty_ruleset_has_only_accept_policies() {
        for json in [fixture!("empty.json"), ""] {
            assert_eq!(
                render(json, IptTable::Filter, None),
                ["-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT"]
            );
            assert_eq!(
                render(json, IptTable::Nat, None),
                ["-P PREROUTING ACCEPT", "-P INPUT ACCEPT", "-P OUTPUT ACCEPT", "-P POSTROUTING ACCEPT"]
            );
        }
    }

    /// Hand-made shapes the captures lack: a second address match and a statement
    /// after the verdict cannot be dropped either.
    #[test]
    fn nothing_is_dropped_silently() {
        let json = r#"{"nftables": [
            {"chain": {"family": "inet", "table": "t", "name": "c", "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}},
            {"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.0.2.1"}},
                {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.0.2.2"}},
                {"accept": null}, {"drop": null}]}},
            {"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}},
                {"counter": {"packets": 3, "bytes": 4}},
                {"dnat": {"family": "ip", "addr": "192.0.2.9", "flags": ["persistent"]}}]}}
        ]}"#;
        let filter = render(json, IptTable::Filter, None);
        assert!(filter[3].starts_with("-A OUTPUT -d 192.0.2.1/32 -m comment --comment \"nft: "), "{}", filter[3]);
        assert!(filter[3].contains("192.0.2.2") && filter[3].contains("drop"), "{}", filter[3]);
        assert!(filter[3].contains(" -j ACCEPT"), "{}", filter[3]);
        assert!(filter[4].starts_with("-A OUTPUT -m comment --comment \"nft: ") && filter[4].contains("persistent"));
        assert!(!filter[4].contains("nfproto") && !filter[4].contains("counter"), "{}", filter[4]);
    }

    #[test]
    fn unreadable_listing_is_an_error() {
        assert!(Ruleset::parse("nft: command not found").is_err());
        assert!(Ruleset::parse(r#"{"other": []}"#).is_err());
    }
}
