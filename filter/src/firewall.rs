//! `palisade firewall install|uninstall`: the rules that send traffic to Palisade's queues.
//!
//! A dedicated chain `PALISADE` in the `filter` table of iptables and ip6tables, jumped to from
//! OUTPUT and INPUT (host role) or FORWARD (gateway role). It returns Palisade's own injected
//! packets, then queues everything else (`--queue-balance` over several queues,
//! `--queue-bypass` when failing open). Install is idempotent (it removes what it added before);
//! uninstall removes only the jumps and the chain. nftables is used where the kernel supports its
//! `queue` statement (one `inet palisade` table, [`nft_ruleset`]); on kernels without
//! CONFIG_NFT_QUEUE the iptables NFQUEUE target (xt compatibility) is used, and the command says
//! which it chose. `--backend nft|iptables` forces one.

use std::process::Command;

use std::io::Write as _;
use std::net::IpAddr;
use std::process::Stdio;

use palisade_rules::IntelSet;

use crate::capture::nfqueue::{MARK_BYPASS, MARK_INJECTED, MARK_INSPECTED};

/// Where Palisade sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// On the host itself: OUTPUT and INPUT.
    Host,
    /// On a router: FORWARD.
    Gateway,
}

/// Install settings.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Host or gateway.
    pub role: Role,
    /// First and last queue number.
    pub queues: (u16, u16),
    /// Pass packets when no Palisade listens (`--queue-bypass`).
    pub fail_open: bool,
}

/// Which rules `install` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// nftables when the kernel supports `queue`, else iptables.
    Auto,
    /// Native nftables (fails where the kernel lacks `queue`).
    Nft,
    /// The iptables NFQUEUE target.
    Iptables,
}

/// The native nftables table.
pub const NFT_TABLE: &str = "palisade";

/// The native nftables ruleset of the plan: one `inet` table (IPv4 and IPv6), so install and
/// uninstall are one transaction each. The same logic as the iptables chains: Palisade's own
/// injected packets and bypassed connections return, everything else is queued; accepted
/// packets marked for bypass save the mark to their connection in postrouting.
pub fn nft_ruleset(p: &Plan) -> String {
    let hooks: &[&str] = match p.role {
        Role::Host => &["output", "input"],
        Role::Gateway => &["forward"],
    };
    let queue = if p.queues.0 == p.queues.1 {
        format!("queue num {}", p.queues.0)
    } else {
        format!("queue num {}-{}", p.queues.0, p.queues.1)
    };
    let flags = match (p.fail_open, p.queues.0 != p.queues.1) {
        (true, true) => " bypass,fanout",
        (true, false) => " bypass",
        (false, true) => " fanout",
        (false, false) => "",
    };
    let mut t = format!("table inet {NFT_TABLE} {{\n");
    for h in hooks {
        t.push_str(&format!(
            "  chain queue_{h} {{\n    type filter hook {h} priority filter; policy accept;\n    meta mark & {MARK_INJECTED:#x} == {MARK_INJECTED:#x} return\n    ct mark & {MARK_BYPASS:#x} == {MARK_BYPASS:#x} return\n    {queue}{flags}\n  }}\n"
        ));
    }
    t.push_str(&format!(
        "  chain save_bypass {{\n    type filter hook postrouting priority mangle; policy accept;\n    meta mark & {MARK_BYPASS:#x} == {MARK_BYPASS:#x} ct mark set ct mark | {MARK_BYPASS:#x}\n  }}\n}}\n"
    ));
    t
}

/// Runs `nft -f -` (`check`: `nft -c`, nothing applied) on a script.
pub fn nft_apply(script: &str, check: bool) -> Result<(), String> {
    let mut c = Command::new("nft");
    if check {
        c.arg("-c");
    }
    c.args(["-f", "-"]).stdout(Stdio::null());
    feed(c, "nft", "nft", script)
}

const CHAIN: &str = "PALISADE";
const GUARD: &str = "PALISADE_GUARD";
const SET4: &str = "palisade4";
const SET6: &str = "palisade6";

/// The kernel guard's rules for one family: in the `security` table (after `filter`, so it sees
/// packets that `--queue-bypass` passed while Palisade was down), drop listed addresses unless
/// Palisade inspected the packet or bypassed its flow.
pub fn guard_rules(role: Role, set: &str) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let m = |mark: u32| format!("{mark:#x}/{mark:#x}");
    let mut r = vec![
        s(&["-t", "security", "-N", GUARD]),
        s(&[
            "-t",
            "security",
            "-A",
            GUARD,
            "-m",
            "mark",
            "--mark",
            &m(MARK_INSPECTED),
            "-j",
            "RETURN",
        ]),
        s(&[
            "-t",
            "security",
            "-A",
            GUARD,
            "-m",
            "mark",
            "--mark",
            &m(MARK_INJECTED),
            "-j",
            "RETURN",
        ]),
        s(&[
            "-t",
            "security",
            "-A",
            GUARD,
            "-m",
            "connmark",
            "--mark",
            &m(MARK_BYPASS),
            "-j",
            "RETURN",
        ]),
        s(&[
            "-t",
            "security",
            "-A",
            GUARD,
            "-m",
            "set",
            "--match-set",
            set,
            "dst",
            "-j",
            "DROP",
        ]),
        s(&[
            "-t",
            "security",
            "-A",
            GUARD,
            "-m",
            "set",
            "--match-set",
            set,
            "src",
            "-j",
            "DROP",
        ]),
    ];
    for hook in hooks(role) {
        r.push(s(&["-t", "security", "-I", hook, "1", "-j", GUARD]));
    }
    r
}

/// The `ipset restore` script that (re)fills both sets from the block address indicators,
/// swapping in the new contents so the set is never empty in between.
pub fn ipset_script(set: &IntelSet) -> String {
    let mut out = String::new();
    for (name, v4) in [(SET4, true), (SET6, false)] {
        let fam = if v4 { "inet" } else { "inet6" };
        out.push_str(&format!("create {name} hash:net family {fam} -exist\n"));
        out.push_str(&format!(
            "create {name}-new hash:net family {fam} -exist\nflush {name}-new\n"
        ));
        for (addr, len) in set.blocked_prefixes() {
            if addr.is_ipv4() == v4 && len > 0 {
                out.push_str(&format!("add {name}-new {addr}/{len} -exist\n"));
            }
        }
        out.push_str(&format!("swap {name}-new {name}\ndestroy {name}-new\n"));
    }
    out
}

/// Runs `c` with `script` on its standard input; its standard error becomes the error when it
/// fails (`name`: the program, for a failure to start or feed it; `what`: for a failed run).
fn feed(mut c: Command, name: &str, what: &str, script: &str) -> Result<(), String> {
    let mut child = c
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(script.as_bytes())
            .map_err(|e| format!("{name}: {e}"))?;
    }
    let o = child
        .wait_with_output()
        .map_err(|e| format!("{name}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

fn ipset_restore(script: &str) -> Result<(), String> {
    let mut c = Command::new("ipset");
    c.arg("restore");
    feed(c, "ipset", "ipset restore", script)
}

/// True when the kernel guard is installed (its IPv4 set exists).
pub fn guard_installed() -> bool {
    Command::new("ipset")
        .args(["list", "-n", SET4])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Refills the guard's sets from a (reloaded) intel set. Returns how many prefixes it holds.
pub fn guard_refresh(set: &IntelSet) -> Result<usize, String> {
    ipset_restore(&ipset_script(set))?;
    Ok(set
        .blocked_prefixes()
        .iter()
        .filter(|(_, l)| *l > 0)
        .count())
}

/// Whether an address is in the installed guard (for diagnostics and tests).
pub fn guard_contains(addr: IpAddr) -> bool {
    let set = if addr.is_ipv4() { SET4 } else { SET6 };
    Command::new("ipset")
        .args(["test", set, &addr.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The iptables argument lists that install the plan (the same for ip6tables).
pub fn install_rules(p: &Plan) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let injected = format!("{MARK_INJECTED:#x}/{MARK_INJECTED:#x}");
    let bm = format!("{MARK_BYPASS:#x}");
    let bypass = format!("{bm}/{bm}");
    let mut r = vec![
        s(&["-N", CHAIN]),
        s(&[
            "-A", CHAIN, "-m", "mark", "--mark", &injected, "-j", "RETURN",
        ]),
        // Flows Palisade has finished with are no longer queued.
        s(&[
            "-A", CHAIN, "-m", "connmark", "--mark", &bypass, "-j", "RETURN",
        ]),
    ];
    let mut q = s(&["-A", CHAIN, "-j", "NFQUEUE"]);
    if p.queues.0 == p.queues.1 {
        q.extend(s(&["--queue-num", &p.queues.0.to_string()]));
    } else {
        q.extend(s(&[
            "--queue-balance",
            &format!("{}:{}", p.queues.0, p.queues.1),
        ]));
    }
    if p.fail_open {
        q.push("--queue-bypass".into());
    }
    r.push(q);
    for hook in hooks(p.role) {
        r.push(s(&["-I", hook, "1", "-j", CHAIN]));
    }
    // The bypass mark of an accepted packet is saved to its connection in a later hook.
    r.push(s(&["-t", "mangle", "-N", CHAIN]));
    r.push(s(&[
        "-t",
        "mangle",
        "-A",
        CHAIN,
        "-m",
        "mark",
        "--mark",
        &bypass,
        "-j",
        "CONNMARK",
        "--save-mark",
        "--nfmask",
        &bm,
        "--ctmask",
        &bm,
    ]));
    r.push(s(&["-t", "mangle", "-I", "POSTROUTING", "1", "-j", CHAIN]));
    r
}

fn hooks(role: Role) -> &'static [&'static str] {
    match role {
        Role::Host => &["OUTPUT", "INPUT"],
        Role::Gateway => &["FORWARD"],
    }
}

fn run(tool: &str, args: &[String]) -> Result<(), String> {
    let o = Command::new(tool)
        .args(["-w", "5"])
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// Whether the kernel accepts nftables' `queue` statement (probed in a scratch table).
pub fn nft_queue_supported() -> bool {
    let ok = |args: &[&str]| {
        Command::new("nft")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let t = "palisade_probe";
    if !ok(&["add", "table", "inet", t]) {
        return false;
    }
    let supported = ok(&["add", "chain", "inet", t, "c"])
        && ok(&["add", "rule", "inet", t, "c", "queue", "num", "0", "bypass"]);
    ok(&["delete", "table", "inet", t]);
    supported
}

/// Removes Palisade's jumps and chain from iptables and ip6tables. Returns what it removed.
pub fn uninstall() -> Vec<String> {
    let mut done = Vec::new();
    for tool in ["iptables", "ip6tables"] {
        for hook in ["OUTPUT", "INPUT", "FORWARD"] {
            let args = vec![
                "-D".to_string(),
                hook.to_string(),
                "-j".into(),
                CHAIN.into(),
            ];
            // A jump may have been added more than once by hand; remove every copy (bounded).
            for _ in 0..16 {
                if run(tool, &args).is_err() {
                    break;
                }
                done.push(format!("{tool} -D {hook} -j {CHAIN}"));
            }
        }
        if run(tool, &["-F".into(), CHAIN.into()]).is_ok()
            && run(tool, &["-X".into(), CHAIN.into()]).is_ok()
        {
            done.push(format!("{tool} -X {CHAIN}"));
        }
        let m = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        for hook in ["OUTPUT", "INPUT", "FORWARD"] {
            for _ in 0..16 {
                if run(tool, &m(&["-t", "security", "-D", hook, "-j", GUARD])).is_err() {
                    break;
                }
                done.push(format!("{tool} -t security -D {hook} -j {GUARD}"));
            }
        }
        if run(tool, &m(&["-t", "security", "-F", GUARD])).is_ok()
            && run(tool, &m(&["-t", "security", "-X", GUARD])).is_ok()
        {
            done.push(format!("{tool} -t security -X {GUARD}"));
        }
        for _ in 0..16 {
            if run(
                tool,
                &m(&["-t", "mangle", "-D", "POSTROUTING", "-j", CHAIN]),
            )
            .is_err()
            {
                break;
            }
            done.push(format!("{tool} -t mangle -D POSTROUTING -j {CHAIN}"));
        }
        if run(tool, &m(&["-t", "mangle", "-F", CHAIN])).is_ok()
            && run(tool, &m(&["-t", "mangle", "-X", CHAIN])).is_ok()
        {
            done.push(format!("{tool} -t mangle -X {CHAIN}"));
        }
    }
    let nft_gone = Command::new("nft")
        .args(["delete", "table", "inet", NFT_TABLE])
        .output()
        .is_ok_and(|o| o.status.success());
    if nft_gone {
        done.push(format!("nft delete table inet {NFT_TABLE}"));
    }
    for set in [SET4, SET6] {
        let gone = Command::new("ipset")
            .args(["destroy", set])
            .output()
            .is_ok_and(|o| o.status.success());
        if gone {
            done.push(format!("ipset destroy {set}"));
        }
    }
    done
}

/// Runs a rule list with one tool, recording what it applied. An ip6tables failure is recorded
/// and tolerated (IPv6 may be disabled; IPv4 protection stands); an iptables failure is returned.
fn apply(tool: &str, rules: &[Vec<String>], applied: &mut Vec<String>) -> Result<(), String> {
    for args in rules {
        if let Err(e) = run(tool, args) {
            if tool == "ip6tables" {
                applied.push(format!("# skipped: {e}"));
                return Ok(());
            }
            return Err(e);
        }
        applied.push(format!("{tool} {}", args.join(" ")));
    }
    Ok(())
}

/// Installs the plan with native nftables or iptables and ip6tables (after removing an older
/// install; `backend` chooses, `Auto` by what the kernel supports).
/// Returns the backend's description and the commands applied.
pub fn install(
    p: &Plan,
    guard: Option<&IntelSet>,
    backend: Backend,
) -> Result<(String, Vec<String>), String> {
    let supported = nft_queue_supported();
    let native = match backend {
        Backend::Nft if !supported => {
            return Err(
                "nftables `queue` is not supported by this kernel (CONFIG_NFT_QUEUE off); use --backend iptables or auto"
                    .into(),
            )
        }
        Backend::Nft => true,
        Backend::Iptables => false,
        Backend::Auto => supported,
    };
    let said = match (native, supported) {
        (true, _) => "native nftables (`queue` supported by this kernel): table inet palisade",
        (false, true) => "iptables NFQUEUE target, as asked (nftables `queue` is supported here)",
        (false, false) => {
            "nftables `queue` is not supported by this kernel (CONFIG_NFT_QUEUE off): using the iptables NFQUEUE target"
        }
    };
    uninstall();
    let mut applied = Vec::new();
    if native {
        let script = nft_ruleset(p);
        if let Err(e) = nft_apply(&script, false) {
            uninstall();
            return Err(e);
        }
        applied.extend(script.lines().map(str::to_string));
    } else {
        for tool in ["iptables", "ip6tables"] {
            if let Err(e) = apply(tool, &install_rules(p), &mut applied) {
                uninstall();
                return Err(e);
            }
        }
    }
    if let Some(set) = guard {
        let n = match guard_refresh(set) {
            Ok(n) => n,
            Err(e) => {
                uninstall();
                return Err(e);
            }
        };
        applied.push(format!("ipset {SET4}/{SET6}: {n} blocked prefixes"));
        for (tool, name) in [("iptables", SET4), ("ip6tables", SET6)] {
            if let Err(e) = apply(tool, &guard_rules(p.role, name), &mut applied) {
                uninstall();
                return Err(e);
            }
        }
    }
    Ok((said.to_string(), applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_for_each_role() {
        let host = install_rules(&Plan {
            role: Role::Host,
            queues: (0, 1),
            fail_open: true,
        });
        let text: Vec<String> = host.iter().map(|r| r.join(" ")).collect();
        assert_eq!(
            text,
            [
                "-N PALISADE",
                "-A PALISADE -m mark --mark 0x100000/0x100000 -j RETURN",
                "-A PALISADE -m connmark --mark 0x200000/0x200000 -j RETURN",
                "-A PALISADE -j NFQUEUE --queue-balance 0:1 --queue-bypass",
                "-I OUTPUT 1 -j PALISADE",
                "-I INPUT 1 -j PALISADE",
                "-t mangle -N PALISADE",
                "-t mangle -A PALISADE -m mark --mark 0x200000/0x200000 -j CONNMARK --save-mark --nfmask 0x200000 --ctmask 0x200000",
                "-t mangle -I POSTROUTING 1 -j PALISADE",
            ]
        );
        let gw = install_rules(&Plan {
            role: Role::Gateway,
            queues: (3, 3),
            fail_open: false,
        });
        assert_eq!(gw[3].join(" "), "-A PALISADE -j NFQUEUE --queue-num 3");
        assert_eq!(gw[4].join(" "), "-I FORWARD 1 -j PALISADE");
        assert_eq!(gw.len(), 8);
    }

    #[test]
    fn nft_ruleset_for_each_role() {
        let host = nft_ruleset(&Plan {
            role: Role::Host,
            queues: (0, 1),
            fail_open: true,
        });
        assert!(host.starts_with("table inet palisade {\n  chain queue_output {"));
        assert!(host.contains("chain queue_input {\n    type filter hook input priority filter;"));
        assert!(host.contains("    meta mark & 0x100000 == 0x100000 return\n    ct mark & 0x200000 == 0x200000 return\n    queue num 0-1 bypass,fanout\n"));
        assert!(host.contains("meta mark & 0x200000 == 0x200000 ct mark set ct mark | 0x200000"));
        let gw = nft_ruleset(&Plan {
            role: Role::Gateway,
            queues: (3, 3),
            fail_open: false,
        });
        assert!(gw.contains("chain queue_forward {") && !gw.contains("queue_output"));
        assert!(gw.contains("    queue num 3\n"));
    }
}
