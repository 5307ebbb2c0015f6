//! The control stream between a node and the manager: one bidirectional QUIC stream per
//! connection, opened by the node, carrying length-prefixed frames.
//!
//! ```text
//! frame = length (u32, big-endian, of what follows) | type (u8) | payload
//! node -> manager:  Hello (JSON), Applied (JSON), Stats (JSON),
//!                   Events (first sequence number u64 | event lines, one per '\n')
//! manager -> node:  Welcome (JSON: the last event sequence it holds from this node),
//!                   Bundle (a bundle's wire form), Ack (u64: events up to here are stored)
//! ```
//! Every frame is read against a cap for its type before anything is allocated.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Cap of a JSON control frame.
pub const MAX_CONTROL: usize = 64 << 10;
/// Cap of an events frame (a node sends at most this much per frame).
pub const MAX_EVENTS: usize = 4 << 20;

/// A node's greeting.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    /// Rollout group (`default` when none is given).
    pub group: String,
    /// Bundle version in force (0: none yet).
    pub version: u64,
    /// Digest of that bundle.
    pub digest: String,
    /// Palisade's version on the node.
    pub agent: String,
    /// Identity of the node's spool (a new one restarts the event numbering).
    pub spool: u64,
}

/// The manager's answer to a hello.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Welcome {
    /// The node's name as the manager knows it (its certificate's common name).
    pub node: String,
    /// The last event sequence number the manager has stored from this node (0: none).
    pub last_seq: u64,
}

/// A node's report on a bundle it was sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Applied {
    /// The bundle's version (0 when it could not be read).
    pub version: u64,
    /// Its digest.
    pub digest: String,
    /// Whether it is now in force.
    pub ok: bool,
    /// Why not.
    pub error: String,
    /// Verification plus policy build time, milliseconds.
    pub ms: f64,
}

/// A frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Node: who it is and what it runs.
    Hello(Hello),
    /// Manager: what it holds from this node.
    Welcome(Welcome),
    /// Manager: a bundle's wire form.
    Bundle(Vec<u8>),
    /// Node: a bundle applied or refused.
    Applied(Applied),
    /// Node: its counters (name, value).
    Stats(std::collections::BTreeMap<String, u64>),
    /// Node: events `first`, `first + 1`, ... one line each.
    Events {
        /// Sequence number of the first line.
        first: u64,
        /// Lines, each ending in `\n`.
        lines: Vec<u8>,
    },
    /// Manager: every event up to this sequence number is stored.
    Ack(u64),
}

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const BUNDLE: u8 = 3;
const APPLIED: u8 = 4;
const STATS: u8 = 5;
const EVENTS: u8 = 6;
const ACK: u8 = 7;

impl Frame {
    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let json = |t: u8, v: &dyn erased::Json| (t, v.to_json());
        let (t, body) = match self {
            Frame::Hello(h) => json(HELLO, h),
            Frame::Welcome(w) => json(WELCOME, w),
            Frame::Applied(a) => json(APPLIED, a),
            Frame::Stats(s) => json(STATS, s),
            Frame::Bundle(b) => (BUNDLE, b.clone()),
            Frame::Events { first, lines } => {
                let mut b = Vec::with_capacity(8 + lines.len());
                b.extend_from_slice(&first.to_be_bytes());
                b.extend_from_slice(lines);
                (EVENTS, b)
            }
            Frame::Ack(s) => (ACK, s.to_be_bytes().to_vec()),
        };
        let mut o = Vec::with_capacity(5 + body.len());
        o.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
        o.push(t);
        o.extend_from_slice(&body);
        o
    }

    /// Reads one frame's payload of type `t`.
    fn decode(t: u8, b: Vec<u8>) -> Result<Frame, String> {
        fn js<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
            serde_json::from_slice(b).map_err(|e| format!("malformed control frame: {e}"))
        }
        let u64_at = |b: &[u8]| -> Result<u64, String> {
            b.get(..8)
                .and_then(|x| x.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| "short frame".to_string())
        };
        Ok(match t {
            HELLO => Frame::Hello(js(&b)?),
            WELCOME => Frame::Welcome(js(&b)?),
            APPLIED => Frame::Applied(js(&b)?),
            STATS => Frame::Stats(js(&b)?),
            BUNDLE => Frame::Bundle(b),
            EVENTS => Frame::Events {
                first: u64_at(&b)?,
                lines: b[8..].to_vec(),
            },
            ACK if b.len() == 8 => Frame::Ack(u64_at(&b)?),
            _ => return Err(format!("unknown frame type {t} of {} bytes", b.len())),
        })
    }

    /// The cap of a frame of type `t`, given the bundle cap.
    fn cap(t: u8, bundle_cap: usize) -> usize {
        match t {
            BUNDLE => bundle_cap,
            EVENTS => MAX_EVENTS + 8,
            _ => MAX_CONTROL,
        }
    }
}

mod erased {
    pub trait Json {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

/// Reads the next frame; `Ok(None)` at a clean end of stream.
pub async fn read<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    bundle_cap: usize,
) -> Result<Option<Frame>, String> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    r.read_exact(&mut head[1..])
        .await
        .map_err(|e| e.to_string())?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let t = head[4];
    if len == 0 || len - 1 > Frame::cap(t, bundle_cap) {
        return Err(format!("frame type {t} of {len} bytes over its cap"));
    }
    let mut b = vec![0u8; len - 1];
    r.read_exact(&mut b).await.map_err(|e| e.to_string())?;
    Frame::decode(t, b).map(Some)
}

/// Writes a bundle frame from shared bytes (no copy per node).
pub async fn write_bundle<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    wire: &[u8],
) -> Result<(), String> {
    let mut head = (wire.len() as u32 + 1).to_be_bytes().to_vec();
    head.push(BUNDLE);
    w.write_all(&head).await.map_err(|e| e.to_string())?;
    w.write_all(wire).await.map_err(|e| e.to_string())
}

/// Writes a frame.
pub async fn write<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, f: &Frame) -> Result<(), String> {
    w.write_all(&f.encode()).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_caps_hold() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let frames = vec![
            Frame::Hello(Hello {
                group: "canary".into(),
                version: 3,
                digest: "ab".into(),
                agent: "0.1.0".into(),
                spool: 5,
            }),
            Frame::Welcome(Welcome {
                node: "gw1".into(),
                last_seq: 41,
            }),
            Frame::Bundle(vec![1, 2, 3]),
            Frame::Applied(Applied {
                version: 3,
                ok: false,
                error: "bad".into(),
                ..Default::default()
            }),
            Frame::Stats([("packets".to_string(), 9u64)].into()),
            Frame::Events {
                first: 42,
                lines: b"{\"a\":1}\n{\"b\":2}\n".to_vec(),
            },
            Frame::Ack(43),
        ];
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(f.encode());
        }
        rt.block_on(async {
            let mut r = &wire[..];
            for f in &frames {
                assert_eq!(read(&mut r, 1 << 20).await.unwrap().as_ref(), Some(f));
            }
            assert_eq!(read(&mut r, 1 << 20).await.unwrap(), None);
            // A bundle over the cap is refused from its header alone.
            let big = Frame::Bundle(vec![0; 100]).encode();
            assert!(read(&mut &big[..], 50).await.unwrap_err().contains("cap"));
            // Truncations and unknown types are errors, never panics.
            for n in 1..wire.len() {
                let mut r = &wire[..n];
                while let Ok(Some(_)) = read(&mut r, 1 << 20).await {}
            }
            let odd = [0, 0, 0, 2, 99, 0];
            assert!(read(&mut &odd[..], 10).await.is_err());
        });
    }
}
