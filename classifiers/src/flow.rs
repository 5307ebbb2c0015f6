//! The flow model: a flow's first packets and totals in, a score in 0..1 out (1 = looks like
//! beaconing, tunnelling, scanning or bulk exfiltration).
//!
//! The engine keeps a [`FlowRecord`] per flow (fixed size, no allocation) and scores it at the
//! [`FLOW_PKTS`]-th packet and, for shorter flows, when the flow ends. Features
//! ([`flow_features`]), [`FLOW_INPUT`] of them, each scaled to about -1..1:
//!
//! - for each of the first [`FLOW_PKTS`] packets: direction (+1 client to server, -1 back, 0
//!   absent), log payload size, log gap since the previous packet, and the SYN, FIN, RST and PSH
//!   flags;
//! - protocol (TCP, UDP, ICMP, other) and the server port's class (DNS, web, TLS, mail, SSH,
//!   other privileged, unprivileged);
//! - log duration, log packets and bytes each way, the client's share of the bytes;
//! - the application protocol seen (none, DNS, TLS, HTTP, QUIC);
//! - the domain model's highest score for the flow's names, and whether there was one.
//!
//! The network is a small dense MLP (`FLOW_INPUT -> h1 -> h2 -> 1`) read from safetensors like
//! the domain model's, served in plain Rust with no allocation.

use crate::mlp::{sigmoid, simd, Kernel, Layers, ModelError};

/// Packets recorded per flow.
pub const FLOW_PKTS: usize = 8;
/// Width of the flow model's input.
pub const FLOW_INPUT: usize = FLOW_PKTS * 7 + 4 + 7 + 6 + 5 + 2;
/// Version of the flow feature layout.
pub const FLOW_FEATURES_VERSION: &str = "flow-1";

/// What the engine records of a flow for the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowRecord {
    /// IP protocol.
    pub proto: u8,
    /// The server's port (0 for protocols without ports).
    pub server_port: u16,
    /// Packets recorded (at most [`FLOW_PKTS`]).
    pub n: u8,
    /// Payload bytes of each recorded packet, negative from the server.
    pub size: [i32; FLOW_PKTS],
    /// Microseconds since the previous packet (0 for the first).
    pub gap_us: [u32; FLOW_PKTS],
    /// TCP flags of each recorded packet.
    pub flags: [u8; FLOW_PKTS],
    /// Packets client to server, server to client.
    pub pkts: [u64; 2],
    /// Payload bytes client to server, server to client.
    pub bytes: [u64; 2],
    /// Microseconds from the first packet to the last.
    pub duration_us: u64,
    /// Application protocol: 0 none, 1 DNS, 2 TLS, 3 HTTP, 4 QUIC.
    pub app: u8,
    /// The domain model's highest score for the flow's names (negative: none).
    pub name_score: f32,
}

impl Default for FlowRecord {
    fn default() -> Self {
        FlowRecord {
            proto: 0,
            server_port: 0,
            n: 0,
            size: [0; FLOW_PKTS],
            gap_us: [0; FLOW_PKTS],
            flags: [0; FLOW_PKTS],
            pkts: [0; 2],
            bytes: [0; 2],
            duration_us: 0,
            app: 0,
            name_score: -1.0,
        }
    }
}

impl FlowRecord {
    /// Records one packet (the first [`FLOW_PKTS`] are kept).
    pub fn push(&mut self, from_client: bool, payload: usize, gap_us: u32, flags: u8) {
        let i = self.n as usize;
        if i < FLOW_PKTS {
            let s = payload.min(i32::MAX as usize) as i32;
            self.size[i] = if from_client { s } else { -s };
            // A zero-payload packet from the server still needs its direction: -0 cannot say
            // it, so such packets carry the direction in the flags' spare high bit.
            self.flags[i] = flags & 0x3f | if from_client { 0 } else { 0x80 };
            self.gap_us[i] = if i == 0 { 0 } else { gap_us };
            self.n += 1;
        }
    }

    /// Column names of [`FlowRecord::to_csv`], comma-separated.
    pub fn csv_header() -> String {
        let mut h = String::from("proto,server_port,n");
        for k in ["size", "gap_us", "flags"] {
            for i in 0..FLOW_PKTS {
                h.push_str(&format!(",{k}{i}"));
            }
        }
        h.push_str(",pkts_c,pkts_s,bytes_c,bytes_s,duration_us,app,name_score");
        h
    }

    /// The record as one CSV line (no label).
    pub fn to_csv(&self) -> String {
        let mut s = format!("{},{},{}", self.proto, self.server_port, self.n);
        for v in self.size {
            s.push_str(&format!(",{v}"));
        }
        for v in self.gap_us {
            s.push_str(&format!(",{v}"));
        }
        for v in self.flags {
            s.push_str(&format!(",{v}"));
        }
        s.push_str(&format!(
            ",{},{},{},{},{},{},{:.6}",
            self.pkts[0],
            self.pkts[1],
            self.bytes[0],
            self.bytes[1],
            self.duration_us,
            self.app,
            self.name_score
        ));
        s
    }

    /// Parses [`FlowRecord::to_csv`]'s fields.
    pub fn from_csv(fields: &[&str]) -> Option<FlowRecord> {
        let want = 3 + 3 * FLOW_PKTS + 7;
        if fields.len() != want {
            return None;
        }
        let mut r = FlowRecord {
            proto: fields[0].parse().ok()?,
            server_port: fields[1].parse().ok()?,
            n: fields[2].parse::<u8>().ok()?.min(FLOW_PKTS as u8),
            ..FlowRecord::default()
        };
        for i in 0..FLOW_PKTS {
            r.size[i] = fields[3 + i].parse().ok()?;
            r.gap_us[i] = fields[3 + FLOW_PKTS + i].parse().ok()?;
            r.flags[i] = fields[3 + 2 * FLOW_PKTS + i].parse().ok()?;
        }
        let t = &fields[3 + 3 * FLOW_PKTS..];
        r.pkts = [t[0].parse().ok()?, t[1].parse().ok()?];
        r.bytes = [t[2].parse().ok()?, t[3].parse().ok()?];
        r.duration_us = t[4].parse().ok()?;
        r.app = t[5].parse().ok()?;
        r.name_score = t[6].parse().ok()?;
        Some(r)
    }
}

fn port_class(proto: u8, p: u16) -> usize {
    match p {
        53 | 5353 | 5355 => 0,
        80 | 8080 | 8000 => 1,
        443 | 8443 => 2,
        25 | 465 | 587 | 110 | 143 | 993 | 995 => 3,
        22 => 4,
        _ if proto != 6 && proto != 17 => 6,
        1..=1023 => 5,
        _ => 6,
    }
}

fn ln1p(x: f64) -> f32 {
    (x.max(0.0)).ln_1p() as f32
}

/// The flow model's input for a record.
pub fn flow_features(r: &FlowRecord) -> [f32; FLOW_INPUT] {
    let mut x = [0f32; FLOW_INPUT];
    let n = (r.n as usize).min(FLOW_PKTS);
    for i in 0..n {
        let o = i * 7;
        let from_server = r.flags[i] & 0x80 != 0;
        x[o] = if from_server { -1.0 } else { 1.0 };
        x[o + 1] = ln1p(r.size[i].unsigned_abs() as f64) / 8.0;
        x[o + 2] = ln1p(r.gap_us[i] as f64 / 1000.0) / 10.0;
        let f = r.flags[i];
        x[o + 3] = (f & 0x02 != 0) as u8 as f32;
        x[o + 4] = (f & 0x01 != 0) as u8 as f32;
        x[o + 5] = (f & 0x04 != 0) as u8 as f32;
        x[o + 6] = (f & 0x08 != 0) as u8 as f32;
    }
    let mut o = FLOW_PKTS * 7;
    x[o + match r.proto {
        6 => 0,
        17 => 1,
        1 | 58 => 2,
        _ => 3,
    }] = 1.0;
    o += 4;
    x[o + port_class(r.proto, r.server_port)] = 1.0;
    o += 7;
    // Bounded even for the extreme counts hostile input can claim.
    x[o] = (ln1p(r.duration_us as f64 / 1000.0) / 12.0).min(4.0);
    x[o + 1] = (ln1p(r.pkts[0] as f64) / 10.0).min(4.0);
    x[o + 2] = (ln1p(r.pkts[1] as f64) / 10.0).min(4.0);
    x[o + 3] = (ln1p(r.bytes[0] as f64) / 16.0).min(4.0);
    x[o + 4] = (ln1p(r.bytes[1] as f64) / 16.0).min(4.0);
    let total = r.bytes[0] as f64 + r.bytes[1] as f64;
    x[o + 5] = if total == 0.0 {
        0.5
    } else {
        (r.bytes[0] as f64 / total) as f32
    };
    o += 6;
    x[o + (r.app as usize).min(4)] = 1.0;
    o += 5;
    if r.name_score >= 0.0 && r.name_score.is_finite() {
        x[o] = r.name_score.min(1.0);
        x[o + 1] = 1.0;
    }
    x
}

/// The flow network, read from safetensors (`model` = `flow` in its metadata).
#[derive(Debug, Clone)]
pub struct FlowModel {
    l: Layers,
    kernel: Kernel,
}

/// The weights shipped in the repository (`models/flow.safetensors`, see `MODEL.md`).
pub const BUNDLED_FLOW: &[u8] = include_bytes!("../models/flow.safetensors");

impl FlowModel {
    /// The shipped weights.
    pub fn bundled() -> FlowModel {
        match FlowModel::from_bytes(BUNDLED_FLOW) {
            Ok(m) => m,
            // Checked by the crate's tests; a build cannot ship a bad one.
            Err(e) => panic!("bundled flow model: {e}"),
        }
    }

    /// A model from a file; the error names the file.
    pub fn from_file(path: &std::path::Path) -> Result<FlowModel, ModelError> {
        let bytes =
            std::fs::read(path).map_err(|e| ModelError(format!("{}: {e}", path.display())))?;
        FlowModel::from_bytes(&bytes)
            .map_err(|e| ModelError(format!("{}: {}", path.display(), e.0)))
    }

    /// A model from safetensors bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<FlowModel, ModelError> {
        Ok(FlowModel {
            l: Layers::read(bytes, "flow", FLOW_FEATURES_VERSION, FLOW_INPUT)?,
            kernel: Kernel::best(),
        })
    }

    /// `flow-<12 hex digits of the file's SHA-256>`.
    pub fn version(&self) -> &str {
        &self.l.version
    }

    /// Hidden layer sizes.
    pub fn shape(&self) -> (usize, usize) {
        (self.l.h1, self.l.h2)
    }

    /// A threshold recorded in the file's metadata (`threshold_fpr_1e-3`, ...).
    pub fn threshold_at_fpr(&self, fpr: &str) -> Option<f32> {
        self.l.threshold_at_fpr(fpr)
    }

    /// The logit for an input vector, with the widest kernels this CPU has (the same bits
    /// whichever runs: the kernels differ in instructions, not in the order of the sums).
    pub fn logit_of(&self, x: &[f32; FLOW_INPUT]) -> f32 {
        simd::dense(self.kernel, &self.l, x)
    }

    /// Turns off the SIMD kernels (for comparing).
    pub fn set_portable(&mut self) {
        self.kernel = Kernel::Portable;
    }

    /// The kernels in use: `avx512` (which runs the AVX2 code: 256-bit lanes are all a 32-wide
    /// layer needs), `avx2` or `portable`.
    pub fn kernel(&self) -> &'static str {
        self.kernel.name()
    }

    /// Scores a flow record. Allocates nothing.
    pub fn score(&self, r: &FlowRecord) -> f32 {
        sigmoid(self.logit_of(&flow_features(r)))
    }
}

/// One labelled flow from `palisade flow-features` output.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledFlow {
    /// 1.0 malicious, 0.0 benign.
    pub label: f32,
    /// The capture it came from (its name says scenario and run: `beacon-2.pcap`).
    pub file: String,
    /// The record.
    pub record: FlowRecord,
}

impl LabelledFlow {
    /// The scenario: the file name up to its last `-` (`beacon` of `beacon-2.pcap`).
    pub fn scenario(&self) -> &str {
        self.file.rsplit_once('-').map_or(&self.file, |(a, _)| a)
    }

    /// The run: the number after the last `-` (`2` of `beacon-2.pcap`).
    pub fn run(&self) -> u32 {
        self.file
            .rsplit_once('-')
            .and_then(|(_, b)| b.split('.').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// Reads `palisade flow-features` CSV (label, file, flow id, record); labels `1`/`0` or
/// `malicious`/`benign`. A header line is skipped; any other bad line is an error naming the
/// file and line.
pub fn read_flows(path: &std::path::Path) -> Result<Vec<LabelledFlow>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("label,") || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let label = match f.first().map(|l| l.trim()) {
            Some("1" | "malicious") => 1.0,
            Some("0" | "benign") => 0.0,
            _ => {
                return Err(format!(
                    "{}:{}: label must be 1/0 or malicious/benign",
                    path.display(),
                    i + 1
                ))
            }
        };
        let record = f
            .get(3..)
            .and_then(FlowRecord::from_csv)
            .ok_or_else(|| format!("{}:{}: not a flow record", path.display(), i + 1))?;
        out.push(LabelledFlow {
            label,
            file: f.get(1).map_or(String::new(), |s| s.to_string()),
            record,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_kernels_compute_the_general_sums() {
        let m = FlowModel::bundled();
        assert_eq!(
            m.shape(),
            (32, 16),
            "the bundled shape has a fixed-width kernel"
        );
        let mut portable = m.clone();
        portable.set_portable();
        let mut r = FlowRecord {
            proto: 6,
            server_port: 443,
            name_score: 0.25,
            ..FlowRecord::default()
        };
        for i in 0..8u32 {
            r.push(
                i % 3 == 0,
                40 + i as usize * 333,
                1500 * i,
                0x18 | (i as u8 & 3),
            );
            let x = flow_features(&r);
            let general = m.l.dense_general(&x);
            assert_eq!(m.logit_of(&x).to_bits(), general.to_bits(), "packet {i}");
            assert_eq!(
                portable.logit_of(&x).to_bits(),
                general.to_bits(),
                "packet {i}"
            );
        }
    }

    #[test]
    fn record_csv_round_trip_and_bounds() {
        let mut r = FlowRecord {
            proto: 6,
            server_port: 443,
            ..FlowRecord::default()
        };
        for i in 0..12 {
            r.push(i % 2 == 0, i * 100, 1000 * i as u32, 0x18);
        }
        assert_eq!(r.n as usize, FLOW_PKTS);
        assert_eq!(r.size[1], -100);
        assert_eq!(r.flags[1] & 0x80, 0x80);
        r.pkts = [6, 6];
        r.bytes = [3000, 3600];
        r.name_score = 0.25;
        let line = r.to_csv();
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(FlowRecord::csv_header().split(',').count(), fields.len());
        assert_eq!(FlowRecord::from_csv(&fields), Some(r));
        assert_eq!(FlowRecord::from_csv(&fields[1..]), None);
        let x = flow_features(&r);
        assert!(x.iter().all(|v| v.is_finite() && v.abs() <= 4.0));
        assert_eq!(x[0], 1.0);
        assert_eq!(x[7], -1.0);
        // Extreme values stay bounded.
        let big = FlowRecord {
            n: 200,
            size: [i32::MIN; FLOW_PKTS],
            gap_us: [u32::MAX; FLOW_PKTS],
            pkts: [u64::MAX; 2],
            bytes: [u64::MAX; 2],
            duration_us: u64::MAX,
            app: 255,
            name_score: f32::NAN,
            ..FlowRecord::default()
        };
        assert!(flow_features(&big)
            .iter()
            .all(|v| v.is_finite() && v.abs() <= 4.0));
    }
}
