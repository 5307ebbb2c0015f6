use super::*;
use std::path::PathBuf;

fn data_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/pcaps");
    if d.exists() {
        return Some(d);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but {} is missing",
        d.display()
    );
    eprintln!("skipping: {} missing", d.display());
    None
}

fn count(path: &Path) -> Result<(u64, u64), CaptureError> {
    let mut r = CaptureReader::open(path)?;
    let mut n = 0;
    let mut bytes = 0;
    while let Some(p) = r.next_packet()? {
        n += 1;
        bytes += p.data.len() as u64;
    }
    Ok((n, bytes))
}

fn reader(bytes: Vec<u8>) -> Result<CaptureReader, CaptureError> {
    CaptureReader::new(Box::new(std::io::Cursor::new(bytes)))
}

#[test]
fn format_edge_cases_match_tshark_packet_counts() {
    let Some(d) = data_dir() else { return };
    // (file, packets tshark reads: TSHARK_SUMMARY.tsv)
    for (f, n) in [
        ("modified-format.pcap", 1),
        ("ntp.pcap", 12),
        ("test001-be.pcapng", 4),
        ("test001-le.pcapng", 4),
        ("test010-le.pcapng", 4),
        ("test016-be.pcapng", 4),
        ("test016-le.pcapng", 4),
        ("err-buffertoosmall.pcapng", 27),
    ] {
        let p = d.join("file-format/pcap-parser-0.17.0").join(f);
        let (got, _) = count(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(got, n, "{f}");
    }
    // test017 holds only Custom Blocks, which tshark lists as 4 pseudo-packets: no traffic.
    for f in ["test017-be.pcapng", "test017-le.pcapng"] {
        let mut r = CaptureReader::open(&d.join("file-format/pcap-parser-0.17.0").join(f)).unwrap();
        assert!(r.next_packet().unwrap().is_none(), "{f}");
        assert_eq!(r.skipped_blocks, 4, "{f}");
    }
    assert_eq!(count(&d.join("tcpdump/empty.pcap")).unwrap().0, 0);
    // Gzipped pcapng read on the fly.
    assert!(count(&d.join("wireshark/dns+icmp.pcapng.gz")).unwrap().0 > 0);
}

#[test]
fn both_byte_orders_give_the_same_packets() {
    let Some(d) = data_dir() else { return };
    let dir = d.join("file-format/pcap-parser-0.17.0");
    for t in ["test001", "test016"] {
        let read = |f: String| {
            let mut r = CaptureReader::open(&dir.join(f)).unwrap();
            let mut v = Vec::new();
            while let Some(p) = r.next_packet().unwrap() {
                v.push((p.ts_ns, p.linktype, p.data.to_vec()));
            }
            v
        };
        assert_eq!(
            read(format!("{t}-be.pcapng")),
            read(format!("{t}-le.pcapng")),
            "{t}"
        );
    }
}

fn pcap_header(nanos: bool, big: bool) -> Vec<u8> {
    let magic: u32 = if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 };
    let mut h = Vec::new();
    let w32 = |h: &mut Vec<u8>, v: u32| {
        h.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    w32(&mut h, magic);
    h.extend_from_slice(&if big { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
    w32(&mut h, 0);
    w32(&mut h, 0);
    w32(&mut h, 65535);
    w32(&mut h, 1);
    h
}

fn pcap_record(h: &mut Vec<u8>, big: bool, sec: u32, frac: u32, data: &[u8]) {
    for v in [sec, frac, data.len() as u32, data.len() as u32] {
        h.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    h.extend_from_slice(data);
}

#[test]
fn pcap_byte_orders_and_resolutions() {
    for (nanos, big) in [(false, false), (false, true), (true, false), (true, true)] {
        let mut f = pcap_header(nanos, big);
        pcap_record(&mut f, big, 10, 5, b"abc");
        let mut r = reader(f).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.ts_ns, 10_000_000_000 + if nanos { 5 } else { 5_000 });
        assert_eq!((p.data, p.linktype), (&b"abc"[..], 1));
        assert!(r.next_packet().unwrap().is_none());
    }
}

#[test]
fn truncated_file_keeps_what_came_before_and_names_the_offset() {
    let mut f = pcap_header(false, false);
    pcap_record(&mut f, false, 1, 0, &[1; 100]);
    pcap_record(&mut f, false, 2, 0, &[2; 100]);
    let second = 24 + 16 + 100;
    f.truncate(second + 16 + 40);
    let mut r = reader(f).unwrap();
    assert_eq!(r.next_packet().unwrap().unwrap().data, &[1; 100][..]);
    let e = r.next_packet().unwrap_err();
    assert_eq!(e.offset, second as u64);
    assert_eq!(
        e.to_string(),
        format!("truncated at byte {second}: record needs 116 bytes, file has 56")
    );
    // A record length that cannot be real.
    let mut f = pcap_header(false, false);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&u32::MAX.to_le_bytes());
    f.extend_from_slice(&[0; 4]);
    assert!(reader(f)
        .unwrap()
        .next_packet()
        .unwrap_err()
        .to_string()
        .contains("over 16 MiB"));
}

#[test]
fn garbage_and_empty_files_are_clear_errors() {
    let e = reader(b"GIF89a garbage here".to_vec()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "not a pcap or pcapng file (magic 47494638 at byte 0)"
    );
    let e = reader(Vec::new()).unwrap_err();
    assert!(e.to_string().starts_with("truncated at byte 0"), "{e}");
    let e = reader(pcap_header(false, false)[..10].to_vec()).unwrap_err();
    assert!(e.to_string().starts_with("truncated at byte 0"), "{e}");
}

fn block(t: u32, body: &[u8]) -> Vec<u8> {
    let total = 12 + body.len().div_ceil(4) * 4;
    let mut b = t.to_le_bytes().to_vec();
    b.extend_from_slice(&(total as u32).to_le_bytes());
    b.extend_from_slice(body);
    b.resize(total - 4, 0);
    b.extend_from_slice(&(total as u32).to_le_bytes());
    b
}

#[test]
fn pcapng_unknown_blocks_are_skipped_and_tsresol_applies() {
    let mut f = block(
        0x0a0d0d0a,
        &[
            0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    // IDB: linktype 101 (raw), snaplen 0, if_tsresol = 10^-3 (milliseconds).
    f.extend(block(
        1,
        &[101, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0],
    ));
    f.extend(block(0x0000_0bad, b"custom block"));
    f.extend(block(5, b"interface statistics"));
    let mut epb = vec![0u8; 4];
    epb.extend_from_slice(&0u32.to_le_bytes());
    epb.extend_from_slice(&1500u32.to_le_bytes()); // 1.5 s in ms
    epb.extend_from_slice(&3u32.to_le_bytes());
    epb.extend_from_slice(&3u32.to_le_bytes());
    epb.extend_from_slice(b"xyz");
    f.extend(block(6, &epb));
    let mut r = reader(f.clone()).unwrap();
    let p = r.next_packet().unwrap().unwrap();
    assert_eq!(
        (p.ts_ns, p.linktype, p.data),
        (1_500_000_000, 101, &b"xyz"[..])
    );
    assert!(r.next_packet().unwrap().is_none());
    assert_eq!(r.skipped_blocks, 2);
    // A block whose trailer disagrees is corrupt, at that block's offset.
    let at = f.len() - block(6, &epb).len();
    let n = f.len();
    f[n - 1] = 0x7f;
    let mut r = reader(f).unwrap();
    let e = r.next_packet().unwrap_err();
    assert_eq!(e.offset, at as u64);
    assert!(e.to_string().contains("trailer"), "{e}");
}
