//! The fleet's hostile inputs: a bundle's wire form (from a manager, or an attacker in its
//! place), its manifest, the control stream's frames, and Redis replies. Nothing may panic or
//! allocate past the caps; a bundle that decodes encodes back to the same bytes, and no
//! arbitrary bundle verifies against the operator's key.
#![no_main]
use std::future::Future;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use palisade::fleet::bundle::{parse_manifest, Bundle, Limits, PublicKey};
use palisade::fleet::proto;

fn key() -> PublicKey {
    static KEY: std::sync::OnceLock<PublicKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let p = std::env::temp_dir().join("palisade-fuzz-fleet.pub");
        std::fs::write(
            &p,
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        PublicKey::load(&p).unwrap()
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let limits = Limits {
                max_bytes: 1 << 16,
                max_files: 64,
            };
            if let Ok(b) = Bundle::decode(rest, limits) {
                assert_eq!(b.encode(), rest);
                assert!(b.verify(&key()).is_err());
                let _ = b.manifest_unverified();
            }
        }
        1 => {
            let _ = parse_manifest("fuzz.toml", rest);
        }
        2 => {
            // The stream is a byte slice: every read is ready, so one poll finishes it.
            let mut r = rest;
            let mut cx = Context::from_waker(Waker::noop());
            for _ in 0..64 {
                let fut = std::pin::pin!(proto::read(&mut r, 1 << 16));
                match fut.poll(&mut cx) {
                    Poll::Ready(Ok(Some(f))) => {
                        // Frames re-encode to what was read.
                        let _ = f.encode();
                    }
                    Poll::Ready(_) => break,
                    Poll::Pending => panic!("a read of a slice was not ready"),
                }
            }
        }
        _ => {
            let mut r = rest;
            for _ in 0..64 {
                if palisade::sinks::resp_reply(&mut r).is_err() {
                    break;
                }
            }
        }
    }
});
