//! HTTP/1.x stream parser: any split of the same bytes gives the same events (heads, body bytes
//! and their ends, with raw heads kept); never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade::app::http::{HttpEvent, HttpStream};

fn run(parts: &[&[u8]], req: bool) -> Vec<String> {
    let mut s = HttpStream::default();
    s.keep_raw(true);
    let mut v: Vec<String> = Vec::new();
    for p in parts {
        s.feed(p, req, &mut |e| {
            let item = match e {
                HttpEvent::Request(r) => {
                    format!("{} {} {:?} {}", r.method, r.uri, r.host, r.head.len())
                }
                HttpEvent::Response(r) => {
                    format!("{} {:?} {}", r.status, r.content_length, r.head.len())
                }
                HttpEvent::Body(d) => {
                    // Body bytes may come in any number of pieces: compare them joined.
                    let d = d.escape_ascii().to_string();
                    match v.last_mut() {
                        Some(last) if last.starts_with("body ") => {
                            last.push_str(&d);
                            return;
                        }
                        _ => format!("body {d}"),
                    }
                }
                HttpEvent::BodyEnd(n) => format!("end {n}"),
                HttpEvent::Error(e) => e.to_string(),
            };
            v.push(item);
        });
    }
    v
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cut = data[0] as usize % data.len();
    let body = &data[1..];
    let cut = cut.min(body.len());
    for req in [true, false] {
        assert_eq!(run(&[body], req), run(&[&body[..cut], &body[cut..]], req));
    }
});
