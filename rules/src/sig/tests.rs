//! Keyword semantics on small hand-built inputs.

use std::net::IpAddr;

use super::*;

fn set(rules: &str) -> SigSet {
    let mut b = SigSetBuilder::default();
    b.add_text("t.rules", rules);
    assert!(b.problems.is_empty(), "{:?}", b.problems);
    b.build()
}

struct B(Vec<(Buf, Vec<u8>)>);

impl Buffers for B {
    fn get(&self, b: Buf) -> Option<&[u8]> {
        self.0.iter().find(|(x, _)| *x == b).map(|(_, v)| &v[..])
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pkt(payload: &[u8]) -> Packet<'_> {
    Packet {
        src: ip("10.0.0.1"),
        dst: ip("192.0.2.9"),
        sport: 40000,
        dport: 80,
        proto: 6,
        app: App::Http,
        to_server: true,
        established: true,
        tcp_flags: 0x18,
        icmp: (0, 0),
        payload,
        now_ns: 0,
        tls_version: 0,
        vlan: [0; 3],
        stream_size: None,
        events: &[],
    }
}

fn run(s: &SigSet, hook: Hook, p: &Packet<'_>, bufs: &B, fs: &mut FlowSigs) -> Vec<u64> {
    let mut sc = Scratch::default();
    let mut out = Vec::new();
    s.inspect(hook, p, bufs, fs, &mut sc, &mut |m| {
        if m.alert {
            out.push(m.sig.sid)
        }
    });
    out
}

/// Packet-hook sids for a TCP payload.
fn payload_hits(rules: &str, payload: &[u8]) -> Vec<u64> {
    payload_hits_set(&set(rules), payload)
}

/// Packet-hook sids of a built set for a TCP payload, on a fresh flow.
fn payload_hits_set(s: &SigSet, payload: &[u8]) -> Vec<u64> {
    payload_run(s, payload, &mut FlowSigs::default())
}

/// Packet-hook sids of a built set for a TCP payload, on the flow `fs`.
fn payload_run(s: &SigSet, payload: &[u8], fs: &mut FlowSigs) -> Vec<u64> {
    run(
        s,
        Hook::Packet,
        &pkt(payload),
        &B(vec![(Buf::Payload, payload.to_vec())]),
        fs,
    )
}

fn one(rule_opts: &str, payload: &[u8]) -> bool {
    let r = format!("alert tcp-pkt any any -> any any ({rule_opts} sid:1;)");
    !payload_hits(&r, payload).is_empty()
}

#[test]
fn content_basics() {
    assert!(one(r#"content:"evil";"#, b"an evil thing"));
    assert!(!one(r#"content:"EVIL";"#, b"an evil thing"));
    assert!(one(r#"content:"EVIL"; nocase;"#, b"an evil thing"));
    assert!(one(r#"content:"|65 76|il";"#, b"an evil thing"));
    assert!(one(r#"content:"a|3b|b";"#, b"xa;by"));
    assert!(one(r#"content:"a\;b";"#, b"xa;by"));
    assert!(one(r#"content:"q\"t";"#, b"q\"t"));
}

#[test]
fn offset_depth_startswith_endswith() {
    assert!(one(r#"content:"evil"; offset:3;"#, b"an evil"));
    assert!(!one(r#"content:"evil"; offset:4;"#, b"an evil"));
    assert!(one(r#"content:"evil"; depth:7;"#, b"an evil"));
    assert!(!one(r#"content:"evil"; depth:6;"#, b"an evil"));
    assert!(one(r#"content:"evil"; offset:3; depth:4;"#, b"an evil"));
    assert!(one(r#"content:"an"; startswith;"#, b"an evil"));
    assert!(!one(r#"content:"evil"; startswith;"#, b"an evil"));
    assert!(one(r#"content:"evil"; endswith;"#, b"an evil"));
    assert!(!one(r#"content:"an"; endswith;"#, b"an evil"));
    assert!(one(r#"content:"x"; startswith; endswith;"#, b"x"));
    assert!(!one(r#"content:"x"; startswith; endswith;"#, b"xx"));
}

#[test]
fn distance_within_chains_backtrack() {
    // The first "a" is followed by "b" too far away; the second "a" works.
    assert!(one(
        r#"content:"a"; content:"b"; distance:0; within:2;"#,
        b"a....ab"
    ));
    assert!(!one(
        r#"content:"a"; content:"b"; distance:0; within:2;"#,
        b"a....a..b"
    ));
    // distance skips bytes after the previous match.
    assert!(one(
        r#"content:"GET"; content:"x"; distance:2;"#,
        b"GET abx"
    ));
    assert!(!one(r#"content:"GET"; content:"x"; distance:2;"#, b"GET x"));
    // Negative distance looks back.
    assert!(one(
        r#"content:"cd"; content:"bc"; distance:-3; within:2;"#,
        b"abcd"
    ));
    // Three-step chain.
    assert!(one(
        r#"content:"A"; content:"B"; distance:0; within:3; content:"C"; distance:0; within:3;"#,
        b"A.B.C A..B"
    ));
    assert!(!one(
        r#"content:"A"; content:"B"; distance:0; within:3; content:"C"; distance:0; within:3;"#,
        b"A.B...C"
    ));
}

#[test]
fn negated_content() {
    assert!(one(r#"content:"GET"; content:!"admin";"#, b"GET /index"));
    assert!(!one(r#"content:"GET"; content:!"admin";"#, b"GET /admin"));
    // Negation limited to a window after the previous match.
    assert!(one(
        r#"content:"GET"; content:!"admin"; distance:0; within:5;"#,
        b"GET /x......admin"
    ));
    assert!(!one(
        r#"content:"GET"; content:!"admin"; distance:0; within:7;"#,
        b"GET /admin"
    ));
}

#[test]
fn isdataat() {
    assert!(one(r#"content:"ab"; isdataat:1,relative;"#, b"abc"));
    assert!(!one(r#"content:"ab"; isdataat:2,relative;"#, b"abc"));
    assert!(one(r#"content:"ab"; isdataat:!1,relative;"#, b"xxab"));
    assert!(!one(r#"content:"ab"; isdataat:!1,relative;"#, b"abc"));
    assert!(one(r#"content:"a"; isdataat:3;"#, b"abcd"));
    assert!(!one(r#"content:"a"; isdataat:4;"#, b"abcd"));
}

#[test]
fn pcre_flags_and_relative() {
    assert!(one(r#"pcre:"/ev[a-z]l/";"#, b"an evil"));
    assert!(!one(r#"pcre:"/EVIL/";"#, b"an evil"));
    assert!(one(r#"pcre:"/EVIL/i";"#, b"an evil"));
    assert!(one(r#"content:"an"; pcre:"/^\sevil/R";"#, b"an evil"));
    assert!(!one(r#"content:"an"; pcre:"/^evil/R";"#, b"an evil"));
    assert!(one(r#"pcre:!"/admin/";"#, b"GET /"));
    // `$` without m matches before a final newline, as in PCRE.
    assert!(one(r#"pcre:"/evil$/";"#, b"an evil\n"));
    assert!(!one(r#"pcre:"/evil$/";"#, b"an evil\nx"));
    assert!(one(r#"pcre:"/evil$/m";"#, b"an evil\nx"));
    // `.` is any byte but newline; `s` lets it match newlines.
    assert!(!one(r#"pcre:"/a.b/";"#, b"a\nb"));
    assert!(one(r#"pcre:"/a.b/s";"#, b"a\nb"));
    assert!(one(r#"pcre:"/\x00\xff/";"#, b"\x00\xff"));
}

#[test]
fn pcre_constructs_the_regex_crate_lacks_are_skipped() {
    for (p, why) in [
        ("/a(?=b)/", "lookahead"),
        ("/(?<!a)b/", "lookbehind"),
        ("/(a)\\1/", "backreference"),
        ("/(?P<x>a)(?P=x)/", "backreference"),
        ("/a++/", "possessive"),
        ("/(?>a)/", "atomic"),
    ] {
        let mut b = SigSetBuilder::default();
        b.add_text(
            "t.rules",
            &format!("alert tcp any any -> any any (pcre:\"{p}\"; sid:7;)"),
        );
        assert_eq!(b.len(), 0, "{p}");
        let e = &b.problems[0];
        assert_eq!((e.line, e.sid), (1, Some(7)));
        match &e.kind {
            RuleErrorKind::Skipped(s) => {
                assert_eq!(s.keyword, "pcre");
                assert!(s.reason.contains(why), "{p}: {}", s.reason);
            }
            k => panic!("{p}: {k:?}"),
        }
    }
}

#[test]
fn byte_test_and_jump() {
    assert!(one(r#"byte_test:2,>,0x100,0;"#, b"\x01\x01"));
    assert!(!one(r#"byte_test:2,>,0x101,0;"#, b"\x01\x01"));
    assert!(one(r#"byte_test:2,=,0x0101,0,little;"#, b"\x01\x01"));
    assert!(one(r#"byte_test:1,&,0x80,1;"#, b"\x00\x81"));
    assert!(one(r#"byte_test:1,!&,0x80,1;"#, b"\x00\x01"));
    assert!(one(r#"byte_test:3,=,123,1,string,dec;"#, b"x123"));
    assert!(one(r#"byte_test:2,!=,5,0;"#, b"\x00\x06"));
    assert!(one(r#"content:"L"; byte_test:1,=,7,0,relative;"#, b"L\x07"));
    // Length-prefixed jump: skip 3 bytes, then "ok" right after.
    assert!(one(
        r#"byte_jump:1,0; content:"ok"; within:2;"#,
        b"\x03abcok"
    ));
    assert!(!one(
        r#"byte_jump:1,0; content:"ok"; within:2;"#,
        b"\x02abcok"
    ));
    // Out of the buffer: no match.
    assert!(!one(r#"byte_jump:1,0; content:"x";"#, b"\x09ab"));
}

#[test]
fn dsize_flags_bsize() {
    let r = "alert tcp any any -> any any (dsize:>3; sid:1;)";
    assert_eq!(payload_hits(r, b"abcd"), [1]);
    assert!(payload_hits(r, b"abc").is_empty());
    let r = "alert tcp any any -> any any (dsize:2<>5; sid:1;)";
    assert_eq!(payload_hits(r, b"abc"), [1]);
    assert!(payload_hits(r, b"ab").is_empty());
    // pkt() has PSH|ACK.
    assert_eq!(
        payload_hits("alert tcp any any -> any any (flags:PA; sid:1;)", b""),
        [1]
    );
    assert!(payload_hits("alert tcp any any -> any any (flags:S; sid:1;)", b"").is_empty());
    assert_eq!(
        payload_hits("alert tcp any any -> any any (flags:A+; sid:1;)", b""),
        [1]
    );
    assert_eq!(
        payload_hits("alert tcp any any -> any any (flags:!S; sid:1;)", b""),
        [1]
    );
    assert_eq!(
        payload_hits("alert tcp any any -> any any (flags:P,A; sid:1;)", b""),
        [1]
    );
    let s = set(r#"alert dns any any -> any any (dns.query; bsize:11; content:"example"; sid:1;)"#);
    let mut p = pkt(b"");
    p.app = App::Dns;
    let hit = |q: &str| {
        run(
            &s,
            Hook::Dns,
            &p,
            &B(vec![(Buf::DnsQuery, q.as_bytes().to_vec())]),
            &mut FlowSigs::default(),
        )
    };
    assert_eq!(hit("example.com"), [1]);
    assert!(hit("example.org.").is_empty());
}

#[test]
fn addresses_ports_vars_direction() {
    let h = |r: &str| payload_hits(r, b"x");
    // pkt(): 10.0.0.1:40000 -> 192.0.2.9:80; HOME_NET holds 10/8.
    assert_eq!(
        h("alert tcp $HOME_NET any -> $EXTERNAL_NET 80 (sid:1;)"),
        [1]
    );
    assert!(h("alert tcp $EXTERNAL_NET any -> $HOME_NET any (sid:1;)").is_empty());
    assert_eq!(
        h("alert tcp $EXTERNAL_NET any <> $HOME_NET any (sid:1;)"),
        [1]
    );
    assert_eq!(
        h("alert tcp [10.0.0.0/8,!10.0.0.2] any -> any [80,443] (sid:1;)"),
        [1]
    );
    assert!(h("alert tcp [10.0.0.0/8,!10.0.0.1] any -> any any (sid:1;)").is_empty());
    assert!(h("alert tcp any any -> any !80 (sid:1;)").is_empty());
    assert_eq!(h("alert tcp any 1024: -> any :1023 (sid:1;)"), [1]);
    assert!(h("alert tcp any any -> any [1:79,81:] (sid:1;)").is_empty());
    assert_eq!(
        h("alert tcp any any -> 192.0.2.0/255.255.255.0 any (sid:1;)"),
        [1]
    );
    assert_eq!(
        h("alert tcp any any -> any $HTTP_PORTS (flow:to_server,established; sid:1;)"),
        [1]
    );
    assert!(h("alert tcp any any -> any any (flow:to_client; sid:1;)").is_empty());
    assert!(h("alert udp any any -> any any (sid:1;)").is_empty());
    // Variables from the configuration.
    let mut v = Vars::default();
    v.set_addr("HOME_NET", "[192.0.2.0/24]");
    let mut b = SigSetBuilder::new(v);
    b.add_text("t", "alert tcp any any -> $HOME_NET any (sid:1;)");
    let s = b.build();
    let p = pkt(b"x");
    assert_eq!(
        run(&s, Hook::Packet, &p, &B(vec![]), &mut FlowSigs::default()),
        [1]
    );
}

#[test]
fn flowbits_and_noalert() {
    let s = set(concat!(
        "alert tcp-pkt any any -> any any (content:\"login\"; flowbits:set,seen; flowbits:noalert; sid:1;)\n",
        "alert tcp-pkt any any -> any any (content:\"secret\"; flowbits:isset,seen; sid:2;)\n",
        "alert tcp-pkt any any -> any any (content:\"secret\"; flowbits:isnotset,seen; sid:3;)\n",
        "alert tcp-pkt any any -> any any (content:\"logout\"; flowbits:unset,seen; sid:4;)\n",
    ));
    let mut fs = FlowSigs::default();
    let go = |fs: &mut FlowSigs, d: &[u8]| {
        let p = pkt(d);
        run(
            &s,
            Hook::Packet,
            &p,
            &B(vec![(Buf::Payload, d.to_vec())]),
            fs,
        )
    };
    assert_eq!(go(&mut fs, b"secret"), [3]);
    assert!(go(&mut fs, b"login").is_empty(), "noalert");
    assert_eq!(go(&mut fs, b"secret"), [2]);
    assert_eq!(go(&mut fs, b"logout"), [4]);
    assert_eq!(go(&mut fs, b"secret"), [3]);
}

#[test]
fn thresholds() {
    let s = set(concat!(
        "alert tcp-pkt any any -> any any (content:\"x\"; threshold:type limit,track by_src,count 2,seconds 60; sid:1;)\n",
        "alert tcp-pkt any any -> any any (content:\"x\"; threshold:type threshold,track by_src,count 3,seconds 60; sid:2;)\n",
        "alert tcp-pkt any any -> any any (content:\"x\"; threshold:type both,track by_dst,count 2,seconds 60; sid:3;)\n",
        "alert tcp-pkt any any -> any any (content:\"x\"; detection_filter:track by_src,count 3,seconds 60; sid:4;)\n",
    ));
    let mut sc = Scratch::default();
    let mut counts = [0u32; 5];
    for i in 0..7i64 {
        let mut p = pkt(b"x");
        p.now_ns = i * 1_000_000_000;
        s.inspect(
            Hook::Packet,
            &p,
            &B(vec![(Buf::Payload, b"x".to_vec())]),
            &mut FlowSigs::default(),
            &mut sc,
            &mut |m| counts[m.sig.sid as usize] += 1,
        );
    }
    assert_eq!(counts[1..], [2, 2, 1, 4]);
    // A new window starts after `seconds`.
    let mut p = pkt(b"x");
    p.now_ns = 61_000_000_000;
    let mut got = Vec::new();
    s.inspect(
        Hook::Packet,
        &p,
        &B(vec![(Buf::Payload, b"x".to_vec())]),
        &mut FlowSigs::default(),
        &mut sc,
        &mut |m| got.push(m.sig.sid),
    );
    assert!(got.contains(&1), "{got:?}");
}

#[test]
fn pass_stops_other_rules() {
    let s = set(concat!(
        "alert tcp-pkt any any -> any any (content:\"x\"; sid:1;)\n",
        "pass tcp-pkt any any -> any any (content:\"ok\"; sid:2;)\n",
    ));
    let mut fs = FlowSigs::default();
    let p = pkt(b"x ok");
    let mut sc = Scratch::default();
    let mut all = Vec::new();
    s.inspect(
        Hook::Packet,
        &p,
        &B(vec![(Buf::Payload, b"x ok".to_vec())]),
        &mut fs,
        &mut sc,
        &mut |m| all.push((m.sig.sid, m.alert)),
    );
    assert_eq!(all, [(2, false)]);
    assert!(fs.passed);
    let p = pkt(b"x");
    assert!(run(
        &s,
        Hook::Packet,
        &p,
        &B(vec![(Buf::Payload, b"x".to_vec())]),
        &mut fs
    )
    .is_empty());
}

#[test]
fn sticky_buffers_modifiers_and_transforms() {
    let s = set(concat!(
        "alert http any any -> any any (http.method; content:\"POST\"; http.uri; content:\"/up\"; startswith; sid:1;)\n",
        "alert http any any -> any any (content:\"POST\"; http_method; content:\"/up\"; http_uri; sid:2;)\n",
        "alert http any any -> any any (uricontent:\"/up\"; sid:3;)\n",
        "alert http any any -> any any (http.host; dotprefix; content:\".example.com\"; endswith; sid:4;)\n",
        "alert http any any -> any any (pcre:\"/^\\/up/U\"; sid:5;)\n",
        "alert http any any -> any any (http.uri; content:\"/up\"; http.method; content:\"GET\"; sid:6;)\n",
    ));
    let p = pkt(b"");
    let b = B(vec![
        (Buf::HttpMethod, b"POST".to_vec()),
        (Buf::HttpUri, b"/upload".to_vec()),
        (Buf::HttpHost, b"example.com".to_vec()),
    ]);
    let mut got = run(&s, Hook::HttpRequest, &p, &b, &mut FlowSigs::default());
    got.sort();
    assert_eq!(got, [1, 2, 3, 4, 5]);
    let b = B(vec![(Buf::HttpHost, b"notexample.com".to_vec())]);
    assert!(run(&s, Hook::HttpRequest, &p, &b, &mut FlowSigs::default()).is_empty());
}

#[test]
fn response_rules_see_the_request() {
    let s = set(concat!(
        "alert http any any -> any any (flow:to_client; http.uri; content:\"/a\"; http.stat_code; content:\"404\"; sid:1;)\n",
        "alert http any any -> any any (http.stat_code; content:\"404\"; sid:2;)\n",
        "alert http any any -> any any (http.header; content:\"X-Y\"; sid:3;)\n",
    ));
    assert_eq!(
        s.sigs().iter().find(|x| x.sid == 1).unwrap().hook,
        Hook::HttpResponse
    );
    assert_eq!(
        s.sigs().iter().find(|x| x.sid == 2).unwrap().hook,
        Hook::HttpResponse
    );
    let mut p = pkt(b"");
    p.to_server = false;
    let b = B(vec![
        (Buf::HttpUri, b"/a".to_vec()),
        (Buf::HttpStatCode, b"404".to_vec()),
        (Buf::HttpHeader, b"X-Y: 1\r\n".to_vec()),
    ]);
    let mut got = run(&s, Hook::HttpResponse, &p, &b, &mut FlowSigs::default());
    got.sort();
    assert_eq!(
        got,
        [1, 2, 3],
        "header rules without a direction run on responses too"
    );
    p.to_server = true;
    let b = B(vec![(Buf::HttpHeader, b"X-Y: 1\r\n".to_vec())]);
    assert_eq!(
        run(&s, Hook::HttpRequest, &p, &b, &mut FlowSigs::default()),
        [3]
    );
}

#[test]
fn stream_matches_span_chunks_once() {
    let s = set("alert tcp any any -> any any (content:\"SPLITWORD\"; sid:9;)");
    assert_eq!(s.sigs()[0].hook, Hook::Stream);
    let mut fs = FlowSigs::default();
    let mut sc = Scratch::default();
    let mut hits = 0;
    for chunk in [&b"xxSPLI"[..], b"TWORDyy", b"again SPLITWORD"] {
        let p = pkt(chunk);
        s.inspect_stream(&p, chunk, 0, &mut fs, &mut sc, &mut |_| hits += 1);
    }
    assert_eq!(hits, 1, "found across the boundary, and once per direction");
}

#[test]
fn errors_and_skips_name_file_line_sid() {
    let mut b = SigSetBuilder::default();
    let c = b.add_text(
        "my.rules",
        concat!(
            "# comment\n",
            "alert tcp any any -> any any (content:\"ok\"; sid:1;)\n",
            "alert tcp any any -> any any (content:\"x\"; tag:session,10,packets; sid:2;)\n",
            "alert tcp any any -> any (content:\"x\"; sid:3;)\n",
            "alert dcerpc any any -> any any (content:\"x\"; sid:4;)\n",
            "alert tcp any any -> any any (content:\"x\"; \\\n  sid:5;)\n",
            "alert tcp any any -> any any (content:\"dup\"; sid:1;)\n",
            "alert tcp any any -> any any (content:\"x\"; nocase sid:6;)\n",
        ),
    );
    assert_eq!((c.loaded, c.skipped, c.errors), (2, 2, 3));
    let msgs: Vec<String> = b.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        msgs[0].starts_with("my.rules:3: sid 2: skipped (tag)"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].starts_with("my.rules:4: sid 3: syntax error: header has 6 fields"),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].contains("my.rules:5: sid 4: skipped (protocol)"),
        "{}",
        msgs[2]
    );
    assert!(
        msgs[3].contains("my.rules:8: sid 1: syntax error: duplicate"),
        "{}",
        msgs[3]
    );
    assert!(msgs[4].starts_with("my.rules:9:"), "{}", msgs[4]);
    let s = b.build();
    assert_eq!(s.len(), 2);
    assert!(s.sigs().iter().any(|x| x.sid == 5 && x.line == 6));
}

#[test]
fn alert_fields_from_classtype_and_metadata() {
    let s = set(
        r#"alert tcp any any -> any any (msg:"ET TEST a\;b"; content:"x"; classtype:trojan-activity; metadata:created_at 2024_01_01, former_category MALWARE; sid:2000001; rev:7; gid:1;)"#,
    );
    let sig = &s.sigs()[0];
    assert_eq!(sig.msg, "ET TEST a;b");
    assert_eq!(
        (sig.sid, sig.rev, sig.gid, sig.priority),
        (2000001, 7, 1, 1)
    );
    assert_eq!(s.category(sig), "A Network Trojan was detected");
    assert_eq!(sig.metadata.len(), 2);
}

#[test]
fn stream_offsets_count_from_the_stream_start() {
    let s = set(concat!(
        "alert tcp any any -> any any (content:\"abc\"; depth:3; sid:1;)\n",
        "alert tcp any any -> any any (content:\"xyz\"; offset:10; depth:3; sid:2;)\n",
        "alert tcp any any -> any any (content:\"HEAD\"; startswith; sid:3;)\n",
    ));
    let mut fs = FlowSigs::default();
    let mut sc = Scratch::default();
    let mut hits = Vec::new();
    // "abc" at stream offset 10 is past depth 3; "xyz" at 10 is where sid 2 wants it.
    for chunk in [&b"0123456789"[..], b"abcHEAD", b"xyz"] {
        let p = pkt(chunk);
        s.inspect_stream(&p, chunk, 0, &mut fs, &mut sc, &mut |m| {
            hits.push(m.sig.sid)
        });
    }
    assert!(hits.is_empty(), "{hits:?}");
    let mut fs = FlowSigs::default();
    for chunk in [&b"0123456789"[..], b"xyz"] {
        let p = pkt(chunk);
        s.inspect_stream(&p, chunk, 0, &mut fs, &mut sc, &mut |m| {
            hits.push(m.sig.sid)
        });
    }
    assert_eq!(hits, [2]);
}

#[test]
fn base64_decode_then_data() {
    let r = r#"content:"b64="; base64_decode:bytes 40, offset 0, relative; base64_data; content:"secret";"#;
    assert!(one(r, b"x b64=c2VjcmV0IHN0dWZm"));
    assert!(!one(r, b"x b64=bm90aGluZw=="));
    // The decoded content is not a prefilter pattern: the raw bytes never hold "secret".
    let s = set(&format!("alert tcp-pkt any any -> any any ({r} sid:1;)"));
    assert!(s.sigs()[0].lists[0].steps.len() == 3);
    let mut b = SigSetBuilder::default();
    b.add_text(
        "t",
        "alert tcp any any -> any any (content:\"a\"; base64_decode; sid:2;)",
    );
    assert_eq!(b.len(), 0, "base64_decode without base64_data is skipped");
}

#[test]
fn datasets_string_ndjson_intel_and_set() {
    let dir = std::env::temp_dir().join(format!("palisade-ds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // ".evil.com" in Suricata's base64 form, one JSON form, and an intel list.
    std::fs::write(dir.join("d.lst"), "LmV2aWwuY29t\n").unwrap();
    std::fs::write(dir.join("d.json"), "{\"domain\": \"bad.org\", \"n\": 1}\n").unwrap();
    std::fs::write(
        dir.join("block.txt"),
        "||tracker.example^\n@@||ok.tracker.example^\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("t.rules"),
        concat!(
            "alert dns any any -> any any (dns.query; dotprefix; dataset:isset,b64,type string,match subdomain,load d.lst; sid:1;)\n",
            "alert dns any any -> any any (dns.query; dataset:isset,js,type string,load d.json,format ndjson,value_key domain; sid:2;)\n",
            "alert dns any any -> any any (dns.query; dataset:isset,intel,type string,load block.txt,format intel; sid:3;)\n",
            "alert dns any any -> any any (dns.query; dataset:set,seen,type string; sid:4;)\n",
            "alert dns any any -> any any (dns.query; dataset:isnotset,b64,type string,match subdomain; sid:5;)\n",
        ),
    )
    .unwrap();
    let mut b = SigSetBuilder::default();
    b.add_path(&dir.join("t.rules")).unwrap();
    assert!(b.problems.is_empty(), "{:?}", b.problems);
    let s = b.build();
    let mut p = pkt(b"");
    p.app = App::Dns;
    let mut sc = Scratch::default();
    let mut q = |name: &str| {
        let mut v = Vec::new();
        s.inspect(
            Hook::Dns,
            &p,
            &B(vec![(Buf::DnsQuery, name.as_bytes().to_vec())]),
            &mut FlowSigs::default(),
            &mut sc,
            &mut |m| v.push(m.sig.sid),
        );
        v.sort();
        v
    };
    assert_eq!(q("mail.evil.com"), [1, 4]);
    assert_eq!(q("mail.evil.com"), [1], "set matches the first time only");
    // Without dotprefix (sid 5) "evil.com" is not ".evil.com"; with it (sid 1) it is.
    assert_eq!(q("evil.com"), [1, 4, 5]);
    assert_eq!(q("notevil.com"), [4, 5]);
    assert_eq!(q("bad.org"), [2, 4, 5]);
    assert_eq!(q("a.tracker.example"), [3, 4, 5]);
    assert_eq!(
        q("ok.tracker.example"),
        [4, 5],
        "the list's allow entry wins"
    );
    let mut b = SigSetBuilder::default();
    b.add_text(
        &dir.join("u.rules").display().to_string(),
        "alert dns any any -> any any (dns.query; dataset:isset,x,type string,load nope.lst; sid:9;)\n",
    );
    assert!(
        b.problems[0].to_string().contains("nope.lst"),
        "{}",
        b.problems[0]
    );
    // A dataset's intel list with a bad line refuses the rule, naming the list's line.
    std::fs::write(dir.join("bad.txt"), "a.example\nbad..example\nc.example\n").unwrap();
    let mut b = SigSetBuilder::default();
    b.add_text(
        &dir.join("v.rules").display().to_string(),
        "alert dns any any -> any any (dns.query; dataset:isset,bad,type string,load bad.txt,format intel; sid:10;)\n",
    );
    assert_eq!(b.len(), 0);
    let e = b.problems[0].to_string();
    assert!(
        e.contains("sid 10") && e.contains("bad.txt:2: empty label") && e.contains("(1 bad lines)"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn xbits_span_flows_per_host_and_expire() {
    let s = set(concat!(
        "alert tcp-pkt any any -> any any (content:\"login\"; xbits:set,ET.x,track ip_src,expire 10; noalert; sid:1;)\n",
        "alert tcp-pkt any any -> any any (content:\"secret\"; xbits:isset,ET.x,track ip_src; sid:2;)\n",
        "alert tcp-pkt any any -> any any (content:\"pair\"; xbits:set,ET.p,track ip_pair; noalert; sid:3;)\n",
        "alert tcp-pkt any any -> any any (content:\"back\"; xbits:isset,ET.p,track ip_pair; sid:4;)\n",
        "alert tcp-pkt any any -> any any (content:\"out\"; xbits:unset,ET.x,track ip_src; noalert; sid:5;)\n",
    ));
    let mut sc = Scratch::default();
    let mut go = |d: &[u8], t: i64, swap: bool| {
        let mut p = pkt(d);
        p.now_ns = t * 1_000_000_000;
        if swap {
            std::mem::swap(&mut p.src, &mut p.dst);
        }
        let mut v = Vec::new();
        // A new flow each time: xbits live outside flows.
        s.inspect(
            Hook::Packet,
            &p,
            &B(vec![(Buf::Payload, d.to_vec())]),
            &mut FlowSigs::default(),
            &mut sc,
            &mut |m| {
                if m.alert {
                    v.push(m.sig.sid)
                }
            },
        );
        v
    };
    assert!(go(b"secret", 0, false).is_empty());
    assert!(go(b"login", 1, false).is_empty());
    assert_eq!(go(b"secret", 2, false), [2]);
    assert!(go(b"secret", 3, true).is_empty(), "another source");
    assert!(go(b"secret", 12, false).is_empty(), "expired after 10 s");
    assert!(go(b"login", 13, false).is_empty());
    assert!(go(b"out", 14, false).is_empty());
    assert!(go(b"secret", 15, false).is_empty(), "unset");
    assert!(go(b"pair", 16, false).is_empty());
    assert_eq!(go(b"back", 17, true), [4], "a pair in either direction");
}

#[test]
fn stream_size_sides() {
    let s = set(concat!(
        "alert tcp any any -> any any (stream_size:server,<,5; sid:1;)\n",
        "alert tcp any any -> any any (stream_size:client,>=,101; sid:2;)\n",
        "alert tcp any any -> any any (stream_size:both,!=,1; sid:3;)\n",
        "alert tcp any any -> any any (stream_size:either,=,1; sid:4;)\n",
    ));
    let hits = |sizes: Option<[u32; 2]>| {
        let mut p = pkt(b"");
        p.stream_size = sizes;
        let mut v = run(&s, Hook::Packet, &p, &B(vec![]), &mut FlowSigs::default());
        v.sort();
        v
    };
    // Client sent 100 bytes after its SYN (101), the server only its SYN (1).
    assert_eq!(hits(Some([101, 1])), [1, 2, 4]);
    assert_eq!(hits(Some([50, 9])), [3]);
    assert!(
        hits(None).is_empty(),
        "unknown sizes (midstream, UDP) never match"
    );
}

/// Every matcher kind reports exactly the patterns that occur, whatever their repetitions:
/// the Teddy path hands over to the sieve when a pattern repeats (a run of zeros), and must
/// still find the patterns after the run and those starting inside it.
#[test]
fn matchers_report_every_pattern_that_occurs() {
    use super::build::Matcher;
    use std::cell::RefCell;
    let few: Vec<Vec<u8>> = [
        &b"\0\0\0"[..],
        b")\0",
        b"\0\x01",
        b"\0\0\0\0\0",
        b"uid=0(root)",
        b"zz",
    ]
    .iter()
    .map(|p| p.to_vec())
    .collect();
    let many: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("pattern-{i:03}").into_bytes())
        .chain(few.iter().cloned())
        .collect();
    let mut data = vec![0u8; 5000];
    data.extend_from_slice(b"\x01 UID=0(ROOT) )\0 pattern-007 pattern-199 \0\0\0");
    for pats in [&few, &many] {
        let refs: Vec<&[u8]> = pats.iter().map(|p| &p[..]).collect();
        let want: Vec<usize> = super::sieve::tests::naive(pats, &data)
            .into_iter()
            .collect();
        // Both kernels where the CPU has AVX-512: with it, bulk sets of any size go to the
        // sieve; without, small ones to Teddy with the sieve taking over on repeats.
        for (bulk, wide) in [(true, true), (true, false), (false, false)] {
            let wide = wide && super::sieve::wide_available();
            let m = Matcher::with_kernel(&refs, &[], bulk, wide).expect("built");
            let found = RefCell::new(vec![false; pats.len()]);
            let mut lower = Vec::new();
            m.scan(&data, 0, &mut lower, &|i| found.borrow()[i], &mut |i| {
                found.borrow_mut()[i] = true
            });
            let got: Vec<usize> = (0..pats.len()).filter(|&i| found.borrow()[i]).collect();
            assert_eq!(
                got,
                want,
                "{} patterns, bulk {bulk}, wide {wide}",
                pats.len()
            );
        }
    }
}

/// `decode-event`, `stream-event` and `app-layer-event`: matched against the events the engine
/// raised for the packet (and, for application events, earlier on the flow); events Palisade
/// does not raise skip the rule with the reason.
#[test]
fn event_keywords() {
    let mut b = SigSetBuilder::default();
    b.add_text(
        "ev.rules",
        concat!(
            "alert pkthdr any any -> any any (decode-event:ipv4.trunc_pkt; sid:1;)\n",
            "alert tcp any any -> any any (stream-event:reassembly_overlap_different_data; sid:2;)\n",
            "alert dns any any -> any any (app-layer-event:dns.malformed_data; sid:3;)\n",
            "alert http any any -> any any (app-layer-event:http.invalid_chunklen; content:\"evil\"; sid:4;)\n",
            "alert udp any any -> any any (decode-event:udp.hlen_too_small; sid:5;)\n",
            "alert ip any any -> any any (decode-event:ipv4.opt_invalid_len; sid:6;)\n",
            "alert dns any any -> any any (app-layer-event:!dns.malformed_data; sid:7;)\n",
        ),
    );
    let msgs: Vec<String> = b.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].contains("ev.rules:6: sid 6: skipped (decode-event): decode-event ipv4.opt_invalid_len: Palisade does not detect this event"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].contains("sid 7: skipped (app-layer-event)"),
        "{}",
        msgs[1]
    );
    let s = b.build();
    let none = B(vec![]);
    let with = |events: &'static [&'static str], proto: u8, app: App| {
        let mut p = pkt(b"");
        p.events = events;
        p.proto = proto;
        p.app = app;
        p
    };
    // Nothing raised: nothing matches.
    let p = with(&[], 6, App::None);
    assert!(run(&s, Hook::Packet, &p, &none, &mut FlowSigs::default()).is_empty());
    // A decoder event, on any protocol for pkthdr.
    let p = with(&["decoder.ipv4.trunc_pkt"], 0, App::None);
    assert_eq!(
        run(&s, Hook::Packet, &p, &none, &mut FlowSigs::default()),
        vec![1]
    );
    // The stream event only on TCP, the UDP one only on UDP.
    let p = with(&["stream.reassembly_overlap_different_data"], 17, App::None);
    assert!(run(&s, Hook::Packet, &p, &none, &mut FlowSigs::default()).is_empty());
    let p = with(&["stream.reassembly_overlap_different_data"], 6, App::None);
    assert_eq!(
        run(&s, Hook::Packet, &p, &none, &mut FlowSigs::default()),
        vec![2]
    );
    let p = with(&["decoder.udp.hlen_too_small"], 17, App::None);
    assert_eq!(
        run(&s, Hook::Packet, &p, &none, &mut FlowSigs::default()),
        vec![5]
    );
    // The DNS event on a DNS flow only; on the packet that raised it, not the next one.
    let mut fs = FlowSigs::default();
    let p = with(&["dns.malformed_data"], 17, App::Http);
    assert!(run(&s, Hook::Packet, &p, &none, &mut fs).is_empty());
    let p = with(&["dns.malformed_data"], 17, App::Dns);
    fs.note_events(p.events);
    assert_eq!(run(&s, Hook::Packet, &p, &none, &mut fs), vec![3]);
    let p = with(&[], 17, App::Dns);
    assert!(run(&s, Hook::Packet, &p, &none, &mut fs).is_empty());
    // An application event with content: raised earlier on the flow, matched with the content
    // of a later stream chunk; not on a flow that never raised it.
    let mut fs = FlowSigs::default();
    fs.note_events(&["http.invalid_chunklen"]);
    let p = with(&[], 6, App::Http);
    assert_eq!(
        run(
            &s,
            Hook::Packet,
            &p,
            &B(vec![(Buf::Payload, b"an evil".to_vec())]),
            &mut fs
        )
        .len()
            + {
                let mut sc = Scratch::default();
                let mut n = 0;
                s.inspect_stream(&p, b"an evil chunk", 0, &mut fs, &mut sc, &mut |m| {
                    n += usize::from(m.sig.sid == 4)
                });
                n
            },
        1
    );
    let mut fresh = FlowSigs::default();
    let mut sc = Scratch::default();
    let mut n = 0;
    s.inspect_stream(&p, b"an evil chunk", 0, &mut fresh, &mut sc, &mut |_| {
        n += 1
    });
    assert_eq!(n, 0);
}

/// A rule with the sid of a loaded one replaces it when its rev is higher (Suricata's rule
/// updates), and is refused otherwise.
#[test]
fn duplicate_sid_with_higher_rev_replaces() {
    let mut b = SigSetBuilder::default();
    b.add_text(
        "d.rules",
        concat!(
            "alert tcp-pkt any any -> any any (msg:\"old\"; content:\"a\"; sid:1; rev:1;)\n",
            "alert tcp-pkt any any -> any any (msg:\"new\"; content:\"b\"; sid:1; rev:2;)\n",
            "alert tcp-pkt any any -> any any (msg:\"older\"; content:\"c\"; sid:1; rev:2;)\n",
        ),
    );
    assert_eq!(b.problems.len(), 1);
    assert!(b.problems[0]
        .to_string()
        .contains("d.rules:3: sid 1: syntax error: duplicate"));
    let s = b.build();
    assert_eq!(s.len(), 1);
    assert_eq!(s.sigs()[0].msg, "new");
    assert_eq!(payload_hits_set(&s, b"b"), vec![1]);
    assert!(payload_hits_set(&s, b"a").is_empty());
}

/// `flowint`: conditions before the match, operations after it (Suricata's post-match list),
/// `+` on an unset variable creating it, `-` leaving it unset, variables as targets (unset
/// counts as 0), and the per-flow cap.
#[test]
fn flowint_semantics() {
    let s = set(concat!(
        "alert tcp-pkt any any -> any any (content:\"inc\"; flowint:n,+,1; flowint:n,>,1; sid:1;)\n",
        "alert tcp-pkt any any -> any any (content:\"dec\"; flowint:m,-,5; sid:2;)\n",
        "alert tcp-pkt any any -> any any (content:\"chk\"; flowint:n,>=,2; flowint:m,notset; sid:3;)\n",
        "alert tcp-pkt any any -> any any (content:\"cpy\"; flowint:k,=,n; flowint:n,isset; sid:4;)\n",
        "alert tcp-pkt any any -> any any (content:\"cmp\"; flowint:k,==,n; flowint:k,!=,z; sid:5;)\n",
    ));
    let mut fs = FlowSigs::default();
    let hit = |payload: &[u8], fs: &mut FlowSigs| payload_run(&s, payload, fs);
    // n unset: "inc" fails its n>1 condition (nothing matched, nothing added).
    assert!(hit(b"inc", &mut fs).is_empty());
    assert!(hit(b"chk", &mut fs).is_empty(), "n is still unset");
    // Set n through a rule without conditions: k = n needs n set (isset), so first create n.
    let s2 = set("alert tcp-pkt any any -> any any (content:\"new\"; flowint:n,+,2; sid:9;)\n");
    payload_run(&s2, b"new", &mut fs);
    // n = 2: "inc" checks 2 > 1 before adding: matches, n becomes 3.
    assert_eq!(hit(b"inc", &mut fs), vec![1]);
    // "dec" on unset m: matches (no condition), m stays unset.
    assert_eq!(hit(b"dec", &mut fs), vec![2]);
    assert_eq!(hit(b"chk", &mut fs), vec![3], "n = 3 >= 2 and m unset");
    // k = n (3), then k == n and k != z (z unset counts as 0).
    assert_eq!(hit(b"cpy", &mut fs), vec![4]);
    assert_eq!(hit(b"cmp", &mut fs), vec![5]);
    // Another flow starts empty.
    assert!(hit(b"cmp", &mut FlowSigs::default()).is_empty());
    // The cap: 64 variables per flow, more counted and not created.
    let many: String = (0..70)
        .map(|i| {
            format!(
                "alert tcp-pkt any any -> any any (content:\"v\"; flowint:v{i},=,1; sid:{};)\n",
                100 + i
            )
        })
        .collect();
    let s3 = set(&many);
    let mut fs = FlowSigs::default();
    payload_run(&s3, b"v", &mut fs);
    assert_eq!(fs.ints_dropped, 6);
    // Errors name the problem.
    for (r, want) in [
        ("flowint:n,+;", "needs a value"),
        ("flowint:n,isset,3;", "takes no value"),
        ("flowint:n,*,3;", "unknown flowint operation"),
        ("flowint:n,=,99999999999;", "not a 32-bit number"),
    ] {
        let mut b = SigSetBuilder::default();
        b.add_text(
            "f.rules",
            &format!("alert tcp any any -> any any ({r} sid:1;)\n"),
        );
        let m = b
            .problems
            .first()
            .map(|p| p.to_string())
            .unwrap_or_default();
        assert!(m.contains(want), "{r}: {m}");
    }
}
