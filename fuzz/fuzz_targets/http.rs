//! HTTP/1.x stream parser: any split of the same bytes gives the same events; never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade::app::http::{HttpEvent, HttpStream};

fn run(parts: &[&[u8]], req: bool) -> Vec<String> {
    let mut s = HttpStream::default();
    let mut v = Vec::new();
    for p in parts {
        s.feed(p, req, &mut |e| {
            v.push(match e {
                HttpEvent::Request(r) => format!("{} {} {:?}", r.method, r.uri, r.host),
                HttpEvent::Response(r) => format!("{} {:?}", r.status, r.content_length),
                HttpEvent::BodyEnd(n) => format!("end {n}"),
                HttpEvent::Error(e) => e.to_string(),
            })
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
