//! The units in `systemd/` pass `systemd-analyze verify`, and the sysusers and tmpfiles entries
//! apply cleanly to a scratch root.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn tool(t: &str) -> bool {
    let ok = Command::new(t)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("CI").is_err(), "CI=true but `{t}` is missing");
        eprintln!("skipping: {t} missing");
    }
    ok
}

#[test]
fn unit_verifies_and_user_dirs_apply() {
    if !tool("systemd-analyze") || !tool("systemd-sysusers") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("palisade-units-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // verify checks that the binaries exist: point the unit at the built one.
    let unit = std::fs::read_to_string(repo.join("systemd/palisade.service")).unwrap();
    assert!(
        unit.contains("Type=notify")
            && unit.contains("CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW")
    );
    assert!(
        unit.contains("ProtectSystem=strict")
            && unit.contains("ExecReload=/bin/kill -HUP $MAINPID")
    );
    let manager = std::fs::read_to_string(repo.join("systemd/palisade-manager.service")).unwrap();
    assert!(
        manager.contains("ProtectSystem=strict") && manager.contains("CapabilityBoundingSet=\n")
    );
    for (name, text) in [
        ("palisade.service", unit),
        ("palisade-manager.service", manager),
    ] {
        let local = text.replace("/usr/bin/palisade", env!("CARGO_BIN_EXE_palisade"));
        let path = dir.join(name);
        std::fs::write(&path, local).unwrap();
        let o = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let ours: Vec<&str> = err.lines().filter(|l| l.contains("palisade")).collect();
        assert!(
            o.status.success() && ours.is_empty(),
            "systemd-analyze verify {name}: {err}"
        );
    }
    // sysusers and tmpfiles into a scratch root.
    let root = dir.join("root");
    for d in ["etc", "var/log"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let o = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.display()))
        .arg(repo.join("systemd/palisade.sysusers.conf"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("palisade:") && l.ends_with(":/nonexistent:/usr/sbin/nologin")),
        "{passwd}"
    );
    let o = Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.display()))
        .arg("--create")
        .arg(repo.join("systemd/palisade.tmpfiles.conf"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(root.join("var/log/palisade").is_dir() && root.join("etc/palisade").is_dir());
    let _ = std::fs::remove_dir_all(&dir);
}
