use super::*;

fn set(lists: &[(&str, &str, Action)]) -> IntelSet {
    let mut b = IntelBuilder::new();
    for (name, text, action) in lists {
        b.add_bytes(name, text.as_bytes(), *action)
            .expect("list loads");
    }
    b.build()
}

#[test]
fn domain_matches_itself_and_subdomains_only() {
    let s = set(&[("block.txt", "evil.example\n", Action::Block)]);
    assert_eq!(
        s.match_domain("evil.example").map(|h| h.action),
        Some(Action::Block)
    );
    assert_eq!(
        s.match_domain("a.b.EVIL.example.").map(|h| h.indicator),
        Some("evil.example")
    );
    assert!(s.match_domain("notevil.example").is_none());
    assert!(s.match_domain("example").is_none());
    assert!(s.match_domain("evil.example.com").is_none());
}

/// Names longer than any listed domain (a binary label written `\xNN`, a long HTTP Host) still
/// match by their suffix: a long prefix cannot hide a listed domain.
#[test]
fn long_names_match_by_their_suffix() {
    let s = set(&[(
        "block.txt",
        "evil.example
",
        Action::Block,
    )]);
    let binary: String = (0..63).map(|i| format!("\\x{:02x}", 0x80 + i)).collect();
    for name in [
        format!("{binary}.{binary}.c2.evil.example"),
        format!("{}.evil.example.", "a".repeat(300)),
        format!("{}.x.evil.example", "b.".repeat(200)),
    ] {
        assert!(name.len() > 253);
        let h = s.match_domain(&name).expect("matched");
        assert_eq!(
            (h.action, h.indicator),
            (Action::Block, "evil.example"),
            "{name}"
        );
    }
    assert!(s
        .match_domain(&format!("{binary}.notevil.example"))
        .is_none());
    assert!(s.match_domain(&"a".repeat(400)).is_none());
    // A subdomain match, as for any name under the listed one.
    let long = format!("{}.evil.example", "a".repeat(300));
    assert_eq!(s.match_domain(&long).unwrap().rule, "most-specific");
    assert_eq!(s.match_domain("evil.example").unwrap().rule, "exact");
}

#[test]
fn most_specific_wins_then_allow_block_audit() {
    let s = set(&[
        ("block.txt", "example.com\n", Action::Block),
        ("allow.txt", "good.example.com\n", Action::Allow),
        (
            "audit.txt",
            "x.good.example.com\nexample.com\n",
            Action::Audit,
        ),
    ]);
    let h = s.match_domain("x.good.example.com").unwrap();
    assert_eq!(
        (h.action, h.list, h.rule),
        (Action::Audit, "audit.txt", "exact")
    );
    let h = s.match_domain("y.good.example.com").unwrap();
    assert_eq!((h.action, h.rule), (Action::Allow, "most-specific"));
    // example.com is listed as block and audit: block wins the tie.
    let h = s.match_domain("example.com").unwrap();
    assert_eq!(
        (h.action, h.list, h.line, h.rule),
        (Action::Block, "block.txt", 1, "tie:allow>block>audit")
    );
}

#[test]
fn formats_hosts_adblock_urls_ips() {
    let text = "# comment\n! adblock comment\n[Adblock Plus 2.0]\n\n\
                0.0.0.0 a.example b.example # trailing\n127.0.0.1 localhost\n\
                ||c.example^\n@@||ok.c.example^\n||d.example^$third-party\n\
                192.0.2.7\n198.51.100.0/24\n2001:db8::/32\n203.0.113.9:443\n\
                http://e.example/\nhttp://f.example:8080/bad/path.php?x=1\n*.g.example\n\
                xn--bcher-kva.example\nBÜCHER.example\n";
    let s = set(&[("mixed.txt", text, Action::Block)]);
    for n in [
        "a.example",
        "b.example",
        "c.example",
        "d.example",
        "e.example",
        "g.example",
        "x.g.example",
    ] {
        assert_eq!(
            s.match_domain(n).map(|h| h.action),
            Some(Action::Block),
            "{n}"
        );
    }
    assert!(s.match_domain("localhost").is_none());
    assert_eq!(
        s.match_domain("ok.c.example").map(|h| h.action),
        Some(Action::Allow)
    );
    assert_eq!(
        s.match_domain("bücher.example".to_ascii_lowercase().as_str()),
        None
    ); // wire names are punycode
    assert_eq!(
        s.match_domain("xn--bcher-kva.example").map(|h| h.line),
        Some(17)
    );
    assert_eq!(s.domain_count(), 8); // a b c ok d e g xn--bcher-kva (BÜCHER folds into it)
    let ip = |t: &str| s.match_addr(t.parse().unwrap()).map(|h| h.indicator);
    assert_eq!(ip("192.0.2.7"), Some("192.0.2.7/32"));
    assert_eq!(ip("198.51.100.200"), Some("198.51.100.0/24"));
    assert_eq!(ip("203.0.113.9"), Some("203.0.113.9/32"));
    assert_eq!(ip("2001:db8:1::5"), Some("2001:db8::/32"));
    assert_eq!(ip("198.51.101.1"), None);
    let u = s.match_url("F.example", "/bad/path.php?y=2").unwrap();
    assert_eq!((u.indicator, u.kind), ("f.example/bad/path.php", Kind::Url));
    assert!(s.match_url("f.example", "/other").is_none());
    let s = set(&[(
        "p.txt",
        "/guids/xian/ringin/\nh.example/x.php\n/?user_auth=a1\n",
        Action::Block,
    )]);
    assert_eq!(
        s.match_url("any.example", "/guids/xian/ringin/?a")
            .map(|h| h.kind),
        Some(Kind::Path)
    );
    assert_eq!(
        s.match_url("h.example", "/x.php").map(|h| h.kind),
        Some(Kind::Url)
    );
    assert_eq!(
        s.match_url("h.example", "/?user_auth=a1").map(|h| h.line),
        Some(3)
    );
    assert!(s.match_url("h.example", "/?user_auth=a2").is_none());
}

#[test]
fn longest_prefix_wins() {
    let s = set(&[
        ("b.txt", "10.0.0.0/8\n", Action::Block),
        ("a.txt", "10.1.0.0/16\n", Action::Allow),
    ]);
    assert_eq!(
        s.match_addr("10.1.2.3".parse().unwrap()).map(|h| h.action),
        Some(Action::Allow)
    );
    assert_eq!(
        s.match_addr("10.2.2.3".parse().unwrap()).map(|h| h.action),
        Some(Action::Block)
    );
}

#[test]
fn bad_lines_are_skipped_named_and_counted() {
    let mut b = IntelBuilder::new();
    b.add_bytes("good.txt", b"good.example\n", Action::Block)
        .unwrap();
    let bad = [
        ("bad..example", "empty label"),
        ("||a.example/pa*th^", "wildcards"),
        ("1.2.3.4/40", "prefix length"),
        ("999.1.1.1", "not a valid"),
        ("two words here", "hosts line"),
        ("ftp://x.example/", "scheme"),
        ("bad name!", "hosts line"),
        ("b@d.example", "bad character"),
        ("\u{fffd}", "internationalised"),
    ];
    // Each bad line between two good ones, and a hosts line with one bad name among good ones.
    let mut text = String::new();
    for (i, (line, _)) in bad.iter().enumerate() {
        text += &format!("ok{i}.example\n{line}\n");
    }
    text += "0.0.0.0 h1.example b@d.example h2.example\n10.9.0.0/16\n";
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"\xff\xfe.example\nlast.example\n");
    let info = b.add_bytes("mixed.txt", &bytes, Action::Block).unwrap();
    assert_eq!(
        (info.domains, info.addrs, info.bad_lines),
        (9 + 2 + 1, 1, 11),
        "{info:?}"
    );
    assert_eq!(b.problems.len(), 11, "{:?}", b.problems);
    for (i, (_, needle)) in bad.iter().enumerate() {
        let e = &b.problems[i];
        let line = 2 * i as u32 + 2;
        assert_eq!((e.file.as_str(), e.line), ("mixed.txt", line), "{e}");
        assert!(
            e.to_string().starts_with(&format!("mixed.txt:{line}: ")),
            "{e}"
        );
        assert!(e.reason.contains(needle), "{e}");
    }
    assert_eq!(b.problems[9].line, 19);
    assert!(
        b.problems[9].reason.contains("b@d.example"),
        "{}",
        b.problems[9]
    );
    assert_eq!(b.problems[10].to_string(), "mixed.txt:21: not valid UTF-8");
    let s = b.build();
    for name in [
        "good.example",
        "ok0.example",
        "ok8.example",
        "h1.example",
        "h2.example",
        "last.example",
    ] {
        assert!(s.match_domain(name).is_some(), "{name}");
    }
    assert!(s.match_addr("10.9.1.1".parse().unwrap()).is_some());
    assert!(s.match_domain("d.example").is_none());
}

#[test]
fn a_list_mostly_bad_is_refused_and_unreadable_or_empty_ones_too() {
    let mut b = IntelBuilder::new();
    b.add_bytes("good.txt", b"good.example\n", Action::Block)
        .unwrap();
    b.add_bytes("one-bad.txt", b"ok.example\nbad..example\n", Action::Block)
        .unwrap();
    let kept = b.problems.clone();
    assert_eq!(kept.len(), 1);
    // An HTML error page where a feed was expected.
    let page = b"<html>\n<head><title>404 Not Found</title></head>\n<body>\nsite.example\n</body>\n</html>\n";
    let e = b.add_bytes("feed.txt", page, Action::Block).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("feed.txt", 1), "{e}");
    assert!(
        e.to_string().ends_with(
            "(5 bad lines against 1 with indicators: not a list of indicators, refused)"
        ),
        "{e}"
    );
    assert_eq!(
        b.problems, kept,
        "a refused list's lines are not reported one by one"
    );
    for (text, line, needle) in [
        ("1.2.3.4/40\n", 1, "prefix length"),
        ("# c\nbad..example\n", 2, "empty label"),
    ] {
        let e = b
            .add_bytes("bad.txt", text.as_bytes(), Action::Block)
            .unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("bad.txt", line), "{e}");
        assert!(e.reason.contains(needle), "{e}");
    }
    let e = b
        .add_bytes("empty.txt", b"# nothing\n\n", Action::Block)
        .unwrap_err();
    assert_eq!(e.to_string(), "empty.txt: the list holds no indicator");
    let e = b
        .add_file(Path::new("/nonexistent/list.txt"), Action::Block)
        .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("/nonexistent/list.txt: cannot read"));
    let s = b.build();
    assert!(s.match_domain("good.example").is_some());
    assert!(s.match_domain("ok.example").is_some());
}

#[test]
fn bad_lines_past_the_report_cap_are_counted() {
    let mut b = IntelBuilder::new();
    let mut text = String::new();
    for i in 0..150 {
        text += &format!("n{i}.example\nbad{i}..example\n");
    }
    let info = b
        .add_bytes("many.txt", text.as_bytes(), Action::Block)
        .unwrap();
    assert_eq!((info.domains, info.bad_lines), (150, 150));
    assert_eq!(b.problems.len(), MAX_PROBLEMS);
    assert_eq!(b.problems[MAX_PROBLEMS - 1].line, 2 * MAX_PROBLEMS as u32);
    let s = b.build();
    assert!(s.match_domain("n149.example").is_some());
}

#[test]
fn shared_lists_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/domains/malicious");
    if !dir.exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but {} is missing",
            dir.display()
        );
        eprintln!("skipping: {} missing", dir.display());
        return;
    }
    let mut b = IntelBuilder::new();
    let mut n = 0;
    for f in [
        "urlhaus-filter/urlhaus-filter-domains.txt",
        "urlhaus-filter/urlhaus-filter-hosts.txt",
        "urlhaus-filter/urlhaus-filter-online.txt",
        "et-derived/jarelllama_et_malicious_abp.txt",
        "maltrail/malware_emotet.txt",
        "maltrail/malware_qakbot.txt",
    ] {
        let info = b
            .add_file(&dir.join(f), Action::Block)
            .unwrap_or_else(|e| panic!("{e}"));
        n += info.domains + info.addrs + info.urls;
    }
    // maltrail's RIG list ends with a regular expression, which is not an indicator we support:
    // that line is skipped and named, the rest of the list loads.
    let info = b
        .add_file(&dir.join("maltrail/malicious_ek_rig.txt"), Action::Block)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.bad_lines, 1);
    assert!(info.domains + info.addrs > 300, "{info:?}");
    assert_eq!(b.problems.len(), 1);
    assert!(b.problems[0].to_string().ends_with("malicious_ek_rig.txt:536: `\\b(atztds|mtxtds)[0-9a-z]+\\.(world|xyz)` is not a domain name (bad character)"), "{}", b.problems[0]);
    let s = b.build();
    assert!(n > 30_000, "{n}");
    assert!(s.match_domain("www.05webinvite.com").is_some());
    assert!(s.match_addr("66.210.228.178".parse().unwrap()).is_some());
}

proptest::proptest! {
    #[test]
    fn any_listed_name_matches_its_subdomains(labels in proptest::collection::vec("[a-z0-9]{1,12}", 2..6), sub in "[a-z0-9]{1,10}") {
        let name = labels.join(".");
        // Four numeric labels make an IPv4 address, which a list line means as one.
        proptest::prop_assume!(name.parse::<std::net::IpAddr>().is_err());
        let s = set(&[("p.txt", &format!("{name}\n"), Action::Block)]);
        let q = format!("{sub}.{}", name.to_ascii_uppercase());
        proptest::prop_assert_eq!(s.match_domain(&q).map(|h| h.indicator), Some(name.as_str()));
        let q = format!("{sub}{name}");
        proptest::prop_assert!(s.match_domain(&q).is_none());
    }
}

/// A prefix listed again with a stronger action (an allow list's exception for a blocked
/// prefix, an AdBlock `@@` line) takes over the entry and keeps its text. Found by the `intel`
/// fuzz target (`fuzz/regressions/intel/`): the entry pointed past the recorded texts, so a
/// lookup of an address in the prefix panicked, or named another prefix as the indicator.
#[test]
fn a_prefix_allowed_after_it_was_blocked_matches_as_allowed() {
    let s = set(&[
        ("block.txt", "10.0.0.0/8\n192.0.2.7\n", Action::Block),
        ("allow.txt", "10.0.0.0/8\n", Action::Allow),
    ]);
    let h = s.match_addr("10.1.2.3".parse().unwrap()).unwrap();
    assert_eq!(
        (h.action, h.indicator, h.list, h.line),
        (Action::Allow, "10.0.0.0/8", "allow.txt", 1)
    );
    let h = s.match_addr("192.0.2.7".parse().unwrap()).unwrap();
    assert_eq!((h.action, h.indicator), (Action::Block, "192.0.2.7/32"));
    // Within one list: a hosts line's address, then an AdBlock exception for it.
    let s = set(&[(
        "mixed.txt",
        "0.0.0.0 a.example\n0.0.0.0\n@@||0.0.0.0^\n",
        Action::Block,
    )]);
    let h = s.match_addr("0.0.0.0".parse().unwrap()).unwrap();
    assert_eq!((h.action, h.indicator), (Action::Allow, "0.0.0.0/32"));
    let s = set(&[
        ("block.txt", "2001:db8::/32\n", Action::Block),
        ("allow.txt", "2001:db8::/32\n", Action::Allow),
    ]);
    let h = s.match_addr("2001:db8::1".parse().unwrap()).unwrap();
    assert_eq!((h.action, h.indicator), (Action::Allow, "2001:db8::/32"));
}

proptest::proptest! {
    /// Address lookups against a plain model of the precedence: the longest listed prefix
    /// holding the address decides; among listings of that same prefix, the strongest action
    /// (allow over block over audit), from its first listing; the indicator is the text of the
    /// prefix's first listing. Prefixes collide often (a few addresses, four lengths, three
    /// lists with three actions).
    #[test]
    fn address_lookups_follow_the_precedence(
        entries in proptest::collection::vec((0u8..2, 0u8..2, 0u8..4, 0usize..4, 0usize..3), 1..24),
        queries in proptest::collection::vec((0u8..2, 0u8..2, 0u8..4), 1..16),
    ) {
        let lens = [8u8, 16, 24, 32];
        let names = ["b.txt", "a.txt", "au.txt"];
        let actions = [Action::Block, Action::Allow, Action::Audit];
        let mut texts = [String::new(), String::new(), String::new()];
        // (address, length, list, line) in the order the builder sees them.
        let mut lines = [Vec::new(), Vec::new(), Vec::new()];
        for &(x, y, z, l, list) in &entries {
            let addr = u32::from_be_bytes([10, x, y, z]);
            let len = lens[l];
            texts[list].push_str(&format!("{}/{len}\n", std::net::Ipv4Addr::from(addr)));
            let line = lines[list].len() as u32 + 1;
            lines[list].push((addr, len, list, line));
        }
        let mut b = IntelBuilder::new();
        for list in 0..3 {
            if !texts[list].is_empty() {
                b.add_bytes(names[list], texts[list].as_bytes(), actions[list]).unwrap();
            }
        }
        let s = b.build();
        let order: Vec<(u32, u8, usize, u32)> = lines.concat();
        let mask = |len: u8| if len == 0 { 0 } else { u32::MAX << (32 - len) };
        for &(x, y, z) in &queries {
            let q = u32::from_be_bytes([10, x, y, z]);
            let holding: Vec<_> = order.iter().filter(|e| q & mask(e.1) == e.0 & mask(e.1)).collect();
            let got = s.match_addr(std::net::Ipv4Addr::from(q).into());
            let Some(longest) = holding.iter().map(|e| e.1).max() else {
                proptest::prop_assert!(got.is_none());
                continue;
            };
            let same: Vec<_> = holding.iter().filter(|e| e.1 == longest).collect();
            let strongest = same.iter().map(|e| actions[e.2]).max().unwrap();
            let winner = same.iter().find(|e| actions[e.2] == strongest).unwrap();
            let text = format!("{}/{longest}", std::net::Ipv4Addr::from(same[0].0));
            let h = got.unwrap();
            proptest::prop_assert_eq!(
                (h.action, h.indicator, h.list, h.line),
                (strongest, text.as_str(), names[winner.2], winner.3)
            );
        }
    }
}

proptest::proptest! {
    /// Name lookups against a plain model of the precedence: the longest listed name that is
    /// the query or one of its parents decides; among listings of that name, the strongest
    /// action, from its first listing.
    #[test]
    fn name_lookups_follow_the_precedence(
        entries in proptest::collection::vec((proptest::collection::vec(0usize..3, 0..3), 0usize..3), 1..24),
        queries in proptest::collection::vec(proptest::collection::vec(0usize..3, 0..4), 1..16),
    ) {
        let label = ["a", "b", "www"];
        let name = |ls: &[usize]| {
            let mut n: Vec<&str> = ls.iter().map(|&i| label[i]).collect();
            n.push("example");
            n.join(".")
        };
        let names = ["b.txt", "a.txt", "au.txt"];
        let actions = [Action::Block, Action::Allow, Action::Audit];
        let mut texts = [String::new(), String::new(), String::new()];
        let mut lines = [Vec::new(), Vec::new(), Vec::new()];
        for (ls, list) in &entries {
            let n = name(ls);
            texts[*list].push_str(&format!("{n}\n"));
            let line = lines[*list].len() as u32 + 1;
            lines[*list].push((n, *list, line));
        }
        let mut b = IntelBuilder::new();
        for list in 0..3 {
            if !texts[list].is_empty() {
                b.add_bytes(names[list], texts[list].as_bytes(), actions[list]).unwrap();
            }
        }
        let s = b.build();
        let order: Vec<(String, usize, u32)> = lines.concat();
        for q in &queries {
            let q = name(q);
            let holding: Vec<_> = order
                .iter()
                .filter(|e| q == e.0 || q.ends_with(&format!(".{}", e.0)))
                .collect();
            let got = s.match_domain(&q);
            let Some(longest) = holding.iter().map(|e| e.0.len()).max() else {
                proptest::prop_assert!(got.is_none());
                continue;
            };
            let same: Vec<_> = holding.iter().filter(|e| e.0.len() == longest).collect();
            let strongest = same.iter().map(|e| actions[e.1]).max().unwrap();
            let winner = same.iter().find(|e| actions[e.1] == strongest).unwrap();
            let h = got.unwrap();
            proptest::prop_assert_eq!(
                (h.action, h.indicator, h.list, h.line),
                (strongest, winner.0.as_str(), names[winner.1], winner.2)
            );
        }
    }
}
