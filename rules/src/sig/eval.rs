//! Matching: prefilter, header checks, content lists, flowbits, thresholds.

use std::net::IpAddr;

use std::collections::HashMap;

use super::build::{l4_class, SigSet, CLASSES_PER_HOOK};
use super::*;

/// The packet that triggered an inspection (for app hooks: the packet that completed the
/// request, response, hello or query).
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Source address of this packet.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 for ICMP).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// The flow's application protocol.
    pub app: App,
    /// Client to server.
    pub to_server: bool,
    /// TCP: handshake completed; UDP: both directions seen.
    pub established: bool,
    /// TCP flags.
    pub tcp_flags: u8,
    /// ICMP type and code.
    pub icmp: (u8, u8),
    /// The packet's payload (for `dsize`, and content of packet rules).
    pub payload: &'a [u8],
    /// Packet time (for thresholds).
    pub now_ns: i64,
    /// TLS hello legacy version (TLS hooks).
    pub tls_version: u16,
    /// 802.1Q tags, outermost first (0: none).
    pub vlan: [u16; 3],
    /// TCP: sequence space used so far by the client and the server (next expected sequence
    /// number minus the initial one, as Suricata's `stream_size` counts), when known.
    pub stream_size: Option<[u32; 2]>,
    /// Anomaly events raised while handling this packet (decoder, stream and application
    /// layer; names as in [`super::EVENTS`]).
    pub events: &'a [&'static str],
}

/// Buffers the engine provides for one inspection.
pub trait Buffers {
    /// The buffer's bytes, if the inspection has it.
    fn get(&self, b: Buf) -> Option<&[u8]>;
}

/// A signature that matched.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'s> {
    /// The signature.
    pub sig: &'s Sig,
    /// Whether an alert is logged (false for `noalert` and silent passes).
    pub alert: bool,
}

/// Per-flow signature state.
#[derive(Debug, Default)]
pub struct FlowSigs {
    bits: Vec<u32>,
    /// A `pass` rule matched: no further inspection.
    pub passed: bool,
    tail: [Vec<u8>; 2],
    stream_off: [u64; 2],
    once: Vec<u32>,
    /// Flowbits dropped because the flow held [`MAX_FLOWBITS`].
    pub bits_dropped: u32,
    /// Application-layer events raised on the flow so far (for `app-layer-event` in rules
    /// inspected at a later packet than the one that raised it): the first 8 distinct.
    app_events: super::EventSet,
    /// `flowint` variables: (name, value), at most [`super::MAX_FLOWINTS`].
    ints: Vec<(u32, u32)>,
    /// `flowint` variables not created because the flow held [`super::MAX_FLOWINTS`].
    pub ints_dropped: u32,
}

impl FlowSigs {
    /// Remembers the application-layer events among `raised` (the first 8 distinct per flow).
    pub fn note_events(&mut self, raised: &[&'static str]) {
        for &e in raised {
            if super::is_app_event(e) {
                self.app_events.add(e);
            }
        }
    }

    /// Back to a new flow's state, keeping buffers of at most `keep_bytes` each (so a pool of
    /// them can serve new flows without allocating).
    pub fn reset(&mut self, keep_bytes: usize) {
        fn keep<T>(v: &mut Vec<T>, max: usize) {
            if v.capacity() * std::mem::size_of::<T>() > max {
                *v = Vec::new();
            } else {
                v.clear();
            }
        }
        keep(&mut self.bits, keep_bytes);
        self.passed = false;
        for t in &mut self.tail {
            keep(t, keep_bytes);
        }
        self.stream_off = [0; 2];
        keep(&mut self.once, keep_bytes);
        self.bits_dropped = 0;
        self.app_events = super::EventSet::default();
        keep(&mut self.ints, keep_bytes);
        self.ints_dropped = 0;
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        std::mem::size_of::<FlowSigs>()
            + self.bits.capacity() * 4
            + self.tail[0].capacity()
            + self.tail[1].capacity()
            + self.once.capacity() * 4
            + self.ints.capacity() * 8
    }

    fn int(&self, id: u32) -> Option<u32> {
        self.ints.iter().find(|(i, _)| *i == id).map(|(_, v)| *v)
    }

    fn set_int(&mut self, id: u32, v: u32) {
        if let Some(e) = self.ints.iter_mut().find(|(i, _)| *i == id) {
            e.1 = v;
        } else if self.ints.len() < super::MAX_FLOWINTS {
            self.ints.push((id, v));
        } else {
            self.ints_dropped += 1;
        }
    }

    fn isset(&self, b: u32) -> bool {
        self.bits.contains(&b)
    }

    fn set(&mut self, b: u32) {
        if !self.isset(b) {
            if self.bits.len() >= MAX_FLOWBITS {
                self.bits_dropped += 1;
                return;
            }
            self.bits.push(b);
        }
    }

    fn unset(&mut self, b: u32) {
        self.bits.retain(|&x| x != b);
    }
}

/// Reusable working memory for matching (one per engine).
#[derive(Debug, Default)]
pub struct Scratch {
    cand: Vec<u32>,
    stamp: Vec<u32>,
    pat_stamp: Vec<u32>,
    gen: u32,
    tbuf: Vec<u8>,
    window: Vec<u8>,
    lower: Vec<u8>,
    thresholds: HashMap<(u64, IpAddr, IpAddr), (i64, u32)>,
    /// Threshold entries evicted because the table was full.
    pub threshold_evictions: u64,
    /// Content lists that gave up after [`MAX_STEPS`].
    pub step_limit_hits: u64,
    ds_added: HashMap<u32, std::collections::HashSet<Vec<u8>>>,
    ds_count: usize,
    /// `dataset:set` values refused because [`MAX_DATASET_ADDS`] were held.
    pub ds_full: u64,
    xbits: HashMap<(u32, IpAddr, IpAddr), i64>,
    /// Xbits evicted because [`MAX_XBITS`] were held.
    pub xbit_evictions: u64,
}

impl Scratch {
    fn next_gen(&mut self, sigs: usize, pats: usize) {
        if self.stamp.len() < sigs {
            self.stamp.resize(sigs, 0);
        }
        if self.pat_stamp.len() < pats {
            self.pat_stamp.resize(pats, 0);
        }
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.iter_mut().for_each(|x| *x = 0);
            self.pat_stamp.iter_mut().for_each(|x| *x = 0);
            self.gen = 1;
        }
    }
}

fn apply_transforms<'b>(raw: &'b [u8], tr: &[Transform], tbuf: &'b mut Vec<u8>) -> &'b [u8] {
    if tr.is_empty() {
        return raw;
    }
    tbuf.clear();
    // A leading dotprefix (the usual case) is written first rather than shifted in.
    let rest = match tr.split_first() {
        Some((Transform::DotPrefix, rest)) => {
            tbuf.push(b'.');
            rest
        }
        _ => tr,
    };
    tbuf.extend_from_slice(raw);
    for t in rest {
        match t {
            Transform::DotPrefix => tbuf.insert(0, b'.'),
            Transform::ToLower => tbuf.make_ascii_lowercase(),
            Transform::StripWhitespace => tbuf.retain(|b| !b.is_ascii_whitespace()),
        }
    }
    tbuf
}

fn addr_match(e: &AddrExpr, a: IpAddr) -> bool {
    match e {
        AddrExpr::Any => true,
        AddrExpr::Net(n, len) => prefix_eq(*n, a, *len),
        AddrExpr::Not(x) => !addr_match(x, a),
        AddrExpr::List(items) => group_match(
            items,
            |i| match i {
                AddrExpr::Not(x) => Some(&**x),
                _ => None,
            },
            |i| addr_match(i, a),
        ),
    }
}

/// A group matches when some positive item matches (or there is none) and no negated one does.
fn group_match<T>(items: &[T], negated: impl Fn(&T) -> Option<&T>, m: impl Fn(&T) -> bool) -> bool {
    let (mut pos, mut any_pos) = (false, false);
    for i in items {
        match negated(i) {
            Some(x) if m(x) => return false,
            Some(_) => {}
            None => {
                any_pos = true;
                pos = pos || m(i);
            }
        }
    }
    pos || !any_pos
}

fn prefix_eq(n: IpAddr, a: IpAddr, len: u8) -> bool {
    match (n, a) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            u32::from(n) & m == u32::from(a) & m
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            u128::from(n) & m == u128::from(a) & m
        }
        _ => false,
    }
}

fn port_match(e: &PortExpr, p: u16) -> bool {
    match e {
        PortExpr::Any => true,
        PortExpr::Range(a, b) => (*a..=*b).contains(&p),
        PortExpr::Not(x) => !port_match(x, p),
        PortExpr::List(items) => group_match(
            items,
            |i| match i {
                PortExpr::Not(x) => Some(&**x),
                _ => None,
            },
            |i| port_match(i, p),
        ),
    }
}

fn header_ok(s: &Sig, p: &Packet<'_>, hook: Hook) -> bool {
    let proto_ok = match s.proto {
        Proto::Ip | Proto::Pkthdr => true,
        Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => p.proto == 6,
        Proto::Udp => p.proto == 17,
        Proto::Icmp => p.proto == 1 || p.proto == 58,
        Proto::Dns => p.app == App::Dns,
        Proto::Tls => p.app == App::Tls,
        Proto::Http => p.app == App::Http,
        Proto::Quic => p.app == App::Quic,
        Proto::Smtp => p.app == App::Smtp,
        Proto::Ftp => p.app == App::Ftp,
        Proto::Ssh => p.app == App::Ssh,
        Proto::Smb => p.app == App::Smb,
    };
    if !proto_ok {
        return false;
    }
    let fwd = addr_match(&s.src, p.src)
        && addr_match(&s.dst, p.dst)
        && port_match(&s.sport, p.sport)
        && port_match(&s.dport, p.dport);
    if !fwd {
        let back = s.bidir
            && addr_match(&s.src, p.dst)
            && addr_match(&s.dst, p.src)
            && port_match(&s.sport, p.dport)
            && port_match(&s.dport, p.sport);
        if !back {
            return false;
        }
    }
    let f = s.flow;
    if f.to_server && !p.to_server
        || f.to_client && p.to_server
        || f.established && !p.established
        || f.not_established && p.established
        || f.only_stream && hook != Hook::Stream
        || f.no_stream && hook == Hook::Stream
    {
        return false;
    }
    if let Some(c) = s.dsize {
        if hook == Hook::Stream || !c.test(p.payload.len() as u64) {
            return false;
        }
    }
    if let Some((want, ignore, mode)) = s.tcp_flags {
        if p.proto != 6 {
            return false;
        }
        let got = p.tcp_flags & !ignore;
        let ok = match mode {
            FlagMode::Exact => got == want,
            FlagMode::All => got & want == want,
            FlagMode::Any => got & want != 0,
            FlagMode::Not => got & want == 0,
        };
        if !ok {
            return false;
        }
    }
    if let Some(c) = s.itype {
        if !(p.proto == 1 || p.proto == 58) || !c.test(p.icmp.0 as u64) {
            return false;
        }
    }
    if let Some(c) = s.icode {
        if !(p.proto == 1 || p.proto == 58) || !c.test(p.icmp.1 as u64) {
            return false;
        }
    }
    if let Some(ip) = s.ip_proto {
        if p.proto != ip {
            return false;
        }
    }
    if let Some(v) = s.tls_version {
        if p.tls_version != v {
            return false;
        }
    }
    if let Some((side, c)) = s.stream_size {
        let Some([cl, sv]) = p.stream_size else {
            return false;
        };
        let (a, b) = (c.test(cl as u64), c.test(sv as u64));
        let ok = match side {
            0 => a,
            1 => b,
            2 => a && b,
            _ => a || b,
        };
        if !ok {
            return false;
        }
    }
    let layers = p.vlan.iter().take_while(|&&v| v != 0).count();
    if let Some(c) = s.vlan_layers {
        if !c.test(layers as u64) {
            return false;
        }
    }
    for &(c, layer) in &s.vlan_ids {
        let ids = &p.vlan[..layers];
        let ok = match layer {
            None => ids.iter().any(|&v| c.test(v as u64)),
            Some(VLAN_ALL) => !ids.is_empty() && ids.iter().all(|&v| c.test(v as u64)),
            Some(i) => {
                let idx = if i < 0 {
                    layers as i64 + i as i64
                } else {
                    i as i64
                };
                usize::try_from(idx)
                    .ok()
                    .and_then(|k| ids.get(k))
                    .is_some_and(|&v| c.test(v as u64))
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

impl SigSet {
    /// Inspects one hook. Calls `out` for each signature that matched, in evaluation order
    /// (a matching `pass` stops the rest and marks the flow passed).
    pub fn inspect<'s>(
        &'s self,
        hook: Hook,
        p: &Packet<'_>,
        bufs: &dyn Buffers,
        flow: &mut FlowSigs,
        sc: &mut Scratch,
        out: &mut dyn FnMut(Matched<'s>),
    ) {
        self.inspect_from(hook, p, bufs, flow, sc, out, 0, 0)
    }

    /// As [`SigSet::inspect`]; the prefilter scans the payload from `old` bytes on, less the
    /// longest pattern (the bytes before were scanned with the previous chunk).
    #[allow(clippy::too_many_arguments)]
    fn inspect_from<'s>(
        &'s self,
        hook: Hook,
        p: &Packet<'_>,
        bufs: &dyn Buffers,
        flow: &mut FlowSigs,
        sc: &mut Scratch,
        out: &mut dyn FnMut(Matched<'s>),
        old: usize,
        base: usize,
    ) {
        if flow.passed {
            return;
        }
        let inner = &*self.inner;
        let slot = hook as usize * CLASSES_PER_HOOK
            + match hook {
                Hook::Packet | Hook::Stream => l4_class(p.proto),
                _ => 0,
            };
        let Some(index) = inner.idx.get(slot) else {
            return;
        };
        if index.is_empty() {
            return;
        }
        sc.next_gen(inner.sigs.len(), inner.patterns);
        let gen = sc.gen;
        sc.cand.clear();
        sc.cand.extend_from_slice(&index.always);
        for &s in &index.always {
            sc.stamp[s as usize] = gen;
        }
        {
            let (stamp, cand) = (&mut sc.stamp, &mut sc.cand);
            let mut add = |s: u32| {
                if stamp[s as usize] != gen {
                    stamp[s as usize] = gen;
                    cand.push(s);
                }
            };
            for a in [p.src, p.dst] {
                index.by_addr.lookup(a, &mut add);
            }
            if !index.by_port.is_empty() {
                for port in [p.sport, p.dport] {
                    if let Some(v) = index.by_port.get(&port) {
                        v.iter().for_each(|&s| add(s));
                    }
                }
            }
            if !index.by_event.is_empty() {
                for e in p.events {
                    if let Some(v) = index.by_event.get(e) {
                        v.iter().for_each(|&s| add(s));
                    }
                }
            }
        }
        let dir = u8::from(!p.to_server);
        for pf in &index.pf {
            if pf.dir != dir
                || pf.small && p.payload.len() > super::build::SMALL
                || pf.serves & (1 << super::build::app_code(p.app)) == 0
            {
                continue;
            }
            let Some(raw) = bufs.get(pf.buf) else {
                continue;
            };
            let data = apply_transforms(raw, &pf.transforms, &mut sc.tbuf);
            let from = if pf.buf == Buf::Payload {
                old.saturating_sub(pf.max_len.saturating_sub(1))
                    .min(data.len())
            } else {
                0
            };
            let (stamp, pat_stamp, cand) = (&mut sc.stamp, &mut sc.pat_stamp, &mut sc.cand);
            let pats = std::cell::RefCell::new(pat_stamp);
            let seen = |pid: usize| pats.borrow()[pf.base as usize + pid] == gen;
            let mut hit = |pid: usize| {
                let gid = pf.base as usize + pid;
                let mut ps = pats.borrow_mut();
                if ps[gid] == gen {
                    return;
                }
                ps[gid] = gen;
                for &s in &pf.sigs[pid] {
                    if stamp[s as usize] != gen {
                        stamp[s as usize] = gen;
                        cand.push(s);
                    }
                }
            };
            pf.matcher
                .scan(&data[from..], base + from, &mut sc.lower, &seen, &mut hit);
        }
        sc.cand.sort_unstable();
        let mut k = 0;
        while k < sc.cand.len() {
            let si = sc.cand[k];
            k += 1;
            let s = &inner.sigs[si as usize];
            if !header_ok(s, p, hook) {
                continue;
            }
            let once = matches!(hook, Hook::Stream | Hook::TlsCert);
            if once && flow.once.contains(&si) {
                continue;
            }
            if !bits_ok(s, flow) || !s.xbits.is_empty() && !xbits_ok(s, p, sc) {
                continue;
            }
            if !s.events.iter().all(|e| {
                p.events.contains(e) || super::is_app_event(e) && flow.app_events.contains(e)
            }) {
                continue;
            }
            if let Some(c) = s.urilen {
                match bufs.get(Buf::HttpUri) {
                    Some(u) if c.test(u.len() as u64) => {}
                    _ => continue,
                }
            }
            if !self.lists_match(s, bufs, sc, base) {
                continue;
            }
            if !threshold_ok(s, p, sc) {
                // Still a match for flowbits, but neither logged nor acted on.
                apply_bits(s, flow);
                if !s.xbits.is_empty() {
                    apply_xbits(s, p, sc);
                }
                continue;
            }
            apply_bits(s, flow);
            if !s.xbits.is_empty() {
                apply_xbits(s, p, sc);
            }
            if once && flow.once.len() < 256 {
                flow.once.push(si);
            }
            let alert = !s.noalert && (s.action != SigAction::Pass || s.pass_alert);
            out(Matched { sig: s, alert });
            if s.action == SigAction::Pass {
                flow.passed = true;
                return;
            }
        }
    }

    /// Inspects a TCP stream chunk: the chunk is matched together with the last
    /// [`STREAM_TAIL`] bytes before it, so patterns spanning chunk boundaries are found; each
    /// stream signature alerts at most once per flow and direction. The prefilter scans only
    /// the new bytes (and the longest pattern's length before them), so old bytes are not
    /// scanned again; a signature is evaluated when its fast pattern ends in the new bytes, or
    /// always when it has none.
    #[allow(clippy::too_many_arguments)]
    pub fn inspect_stream<'s>(
        &'s self,
        p: &Packet<'_>,
        chunk: &[u8],
        dir: usize,
        flow: &mut FlowSigs,
        sc: &mut Scratch,
        out: &mut dyn FnMut(Matched<'s>),
    ) {
        let dir = dir.min(1);
        let mut window = std::mem::take(&mut sc.window);
        window.clear();
        window.extend_from_slice(&flow.tail[dir]);
        window.extend_from_slice(chunk);
        struct W<'a>(&'a [u8]);
        impl Buffers for W<'_> {
            fn get(&self, b: Buf) -> Option<&[u8]> {
                (b == Buf::Payload).then_some(self.0)
            }
        }
        let old = flow.tail[dir].len();
        let base = (flow.stream_off[dir] as usize).saturating_sub(old);
        self.inspect_from(Hook::Stream, p, &W(&window), flow, sc, out, old, base);
        let keep = window.len().min(STREAM_TAIL);
        let t = &mut flow.tail[dir];
        t.clear();
        t.extend_from_slice(&window[window.len() - keep..]);
        flow.stream_off[dir] += chunk.len() as u64;
        sc.window = window;
    }

    fn lists_match(&self, s: &Sig, bufs: &dyn Buffers, sc: &mut Scratch, base: usize) -> bool {
        for l in &s.lists {
            let Some(raw) = bufs.get(l.buf) else {
                return false;
            };
            // The transformed copy lives outside the scratch so datasets can use the scratch.
            let mut t = std::mem::take(&mut sc.tbuf);
            let ok = self.list_match(l, raw, &mut t, sc, base);
            sc.tbuf = t;
            if !ok {
                return false;
            }
        }
        true
    }

    /// One buffer's steps, then its datasets (which look at the whole transformed buffer).
    fn list_match(
        &self,
        l: &List,
        raw: &[u8],
        t: &mut Vec<u8>,
        sc: &mut Scratch,
        base: usize,
    ) -> bool {
        let data = apply_transforms(raw, &l.transforms, t);
        if data.is_empty() && l.buf == Buf::Payload {
            return false;
        }
        // Absolute positions count from the start of the stream for stream payloads.
        let base = if l.buf == Buf::Payload { base } else { 0 };
        let mut st = RunState {
            budget: MAX_STEPS,
            base,
        };
        if !self.run(&l.steps, 0, data, 0, &mut st) {
            if st.budget == 0 {
                sc.step_limit_hits += 1;
            }
            return false;
        }
        l.steps.iter().all(|step| match *step {
            Step::Dataset { id, op, subdomain } => self.dataset(id, op, subdomain, data, sc),
            _ => true,
        })
    }

    /// Evaluates `steps[i..]` with the cursor at `prev`.
    fn run(&self, steps: &[Step], i: usize, buf: &[u8], prev: usize, st: &mut RunState) -> bool {
        let Some(step) = steps.get(i) else {
            return true;
        };
        if st.budget == 0 {
            return false;
        }
        st.budget -= 1;
        let retry = steps.get(i + 1).is_some_and(is_relative);
        match step {
            Step::Content(c) => {
                let Some((lo, hi)) = window(c, buf.len(), prev, st.base) else {
                    return c.negated && self.run(steps, i + 1, buf, prev, st);
                };
                if c.negated {
                    return find(c, buf, lo, hi).is_none() && self.run(steps, i + 1, buf, prev, st);
                }
                let mut from = lo;
                while let Some(pos) = find(c, buf, from, hi) {
                    let end = pos + c.pat.len();
                    if self.run(steps, i + 1, buf, end, st) {
                        return true;
                    }
                    if !retry || st.budget == 0 {
                        return false;
                    }
                    st.budget -= 1;
                    from = pos + 1;
                }
                false
            }
            Step::Pcre {
                re,
                relative,
                negated,
            } => {
                let start = if *relative { prev } else { 0 };
                let hay = buf.get(start..).unwrap_or(&[]);
                let re = &self.inner.regexes[*re];
                if *negated {
                    return !re.is_match(hay) && self.run(steps, i + 1, buf, prev, st);
                }
                let mut at = 0;
                while at <= hay.len() {
                    let Some(m) = re.find_at(hay, at) else {
                        return false;
                    };
                    if self.run(steps, i + 1, buf, start + m.end(), st) {
                        return true;
                    }
                    if !retry || st.budget == 0 {
                        return false;
                    }
                    st.budget -= 1;
                    at = m.start() + 1;
                }
                false
            }
            Step::IsDataAt {
                n,
                relative,
                negated,
            } => {
                let has = if *relative {
                    prev + *n as usize <= buf.len()
                } else {
                    (*n as usize) < buf.len() + st.base
                };
                has != *negated && self.run(steps, i + 1, buf, prev, st)
            }
            Step::Bsize(c) => c.test(buf.len() as u64) && self.run(steps, i + 1, buf, prev, st),
            // Datasets look at the whole buffer; `lists_match` checks them once the rest matched.
            Step::Dataset { .. } => self.run(steps, i + 1, buf, prev, st),
            Step::Base64 {
                bytes,
                offset,
                relative,
            } => {
                let start = if *relative { prev } else { 0 } + *offset as usize;
                let Some(src) = buf.get(start..) else {
                    return false;
                };
                let src = match bytes {
                    Some(n) => &src[..src.len().min(*n as usize)],
                    None => src,
                };
                // Only rules with base64_data get here (few): the decoded copy is theirs.
                let decoded = super::base64(src, false).unwrap_or_default();
                let mut inner = RunState {
                    budget: st.budget,
                    base: 0,
                };
                let ok = self.run(steps, i + 1, &decoded, 0, &mut inner);
                st.budget = inner.budget;
                ok
            }
            Step::ByteTest {
                bytes,
                op,
                negated,
                offset,
                relative,
                fmt,
                bitmask,
            } => {
                let at = step_pos(*relative, prev, st.base, *offset);
                let Some(v) = read_masked(buf, at, *bytes, *fmt, *bitmask) else {
                    return false;
                };
                let r = match *op {
                    ByteOp::Lt(n) => v < n,
                    ByteOp::Gt(n) => v > n,
                    ByteOp::Le(n) => v <= n,
                    ByteOp::Ge(n) => v >= n,
                    ByteOp::Eq(n) => v == n,
                    ByteOp::And(n) => v & n != 0,
                    ByteOp::Xor(n) => v ^ n != 0,
                };
                r != *negated && self.run(steps, i + 1, buf, prev, st)
            }
            Step::ByteJump {
                bytes,
                offset,
                relative,
                fmt,
                multiplier,
                align,
                from_beginning,
                from_end,
                post_offset,
                bitmask,
            } => {
                let base = step_pos(*relative, prev, st.base, *offset);
                let Some(v) = read_masked(buf, base, *bytes, *fmt, *bitmask) else {
                    return false;
                };
                let mut jump = (v as i128) * (*multiplier as i128);
                if *align && jump % 4 != 0 {
                    jump += 4 - jump % 4;
                }
                let from = if *from_beginning {
                    0
                } else if *from_end {
                    buf.len() as i128
                } else {
                    (base + *bytes as i64) as i128
                };
                let to = from + jump + *post_offset as i128;
                if to < 0 || to > buf.len() as i128 {
                    return false;
                }
                self.run(steps, i + 1, buf, to as usize, st)
            }
        }
    }
}

impl SigSet {
    fn dataset(&self, id: u32, op: DatasetOp, subdomain: bool, v: &[u8], sc: &mut Scratch) -> bool {
        let (fixed, lists) = &self.inner.datasets[id as usize];
        let added = sc.ds_added.get(&id);
        let has = |x: &[u8]| fixed.contains(x) || added.is_some_and(|a| a.contains(x));
        // Intel lists decide by their own rules (subdomains, allow entries, prefixes).
        let listed = || {
            let Ok(t) = std::str::from_utf8(v) else {
                return false;
            };
            let t = t.trim_start_matches('.');
            lists.iter().any(|l| {
                let hit = match t.parse::<IpAddr>() {
                    Ok(a) => l.match_addr(a),
                    Err(_) => l.match_domain(t),
                };
                hit.is_some_and(|h| h.action != crate::Action::Allow)
            })
        };
        let found = has(v)
            || !lists.is_empty() && listed()
            || subdomain
                && v.iter()
                    .enumerate()
                    .any(|(i, &b)| b == b'.' && i > 0 && (has(&v[i..]) || has(&v[i + 1..])));
        match op {
            DatasetOp::IsSet => found,
            DatasetOp::IsNotSet => !found,
            DatasetOp::Set => {
                if found {
                    return false;
                }
                if sc.ds_count >= MAX_DATASET_ADDS {
                    sc.ds_full += 1;
                    return false;
                }
                sc.ds_count += 1;
                sc.ds_added.entry(id).or_default().insert(v.to_vec())
            }
        }
    }
}

/// Values `dataset:set` may add per engine (all sets together); more are counted in `ds_full`.
pub const MAX_DATASET_ADDS: usize = 65_536;

/// Backtracking budget, and where the buffer starts in its stream (0 but for stream chunks).
struct RunState {
    budget: u32,
    base: usize,
}

fn is_relative(s: &Step) -> bool {
    match s {
        Step::Content(c) => c.relative(),
        Step::Pcre { relative, .. }
        | Step::IsDataAt { relative, .. }
        | Step::ByteTest { relative, .. }
        | Step::ByteJump { relative, .. } => *relative,
        Step::Bsize(_) | Step::Base64 { .. } | Step::Dataset { .. } => false,
    }
}

/// Where a content may match: start at or after `lo`, end at or before `hi`.
fn window(c: &Content, len: usize, prev: usize, base: usize) -> Option<(usize, usize)> {
    let (lo, hi) = if c.relative() {
        let d = c.distance.unwrap_or(0) as i64;
        let lo = (prev as i64 + d).max(0) as usize;
        let hi = match c.within {
            Some(w) => ((prev as i64 + d).max(0) as usize).saturating_add(w as usize),
            None => len,
        };
        (lo, hi.min(len))
    } else {
        let lo = c.offset as usize;
        let hi = c
            .depth
            .map_or(usize::MAX, |d| lo.saturating_add(d as usize));
        if hi != usize::MAX && hi <= base {
            return None;
        }
        (lo.saturating_sub(base), hi.saturating_sub(base).min(len))
    };
    let (lo, hi) = if c.endswith {
        (lo.max(len.saturating_sub(c.pat.len())), hi)
    } else {
        (lo, hi)
    };
    (lo <= hi && hi - lo >= c.pat.len() && (!c.endswith || hi == len)).then_some((lo, hi))
}

/// First occurrence starting at or after `from` and ending at or before `hi`.
fn find(c: &Content, buf: &[u8], from: usize, hi: usize) -> Option<usize> {
    let n = c.pat.len();
    if from > hi || hi - from < n {
        return None;
    }
    let hay = &buf[from..hi];
    let pos = if c.nocase {
        let first = c.pat[0];
        let up = first.to_ascii_uppercase();
        let mut i = 0;
        loop {
            let rel = memchr::memchr2(first, up, hay.get(i..hay.len() + 1 - n)?)?;
            let at = i + rel;
            if hay[at..at + n].eq_ignore_ascii_case(&c.pat) {
                break Some(at);
            }
            i = at + 1;
        }
    } else {
        memchr::memmem::find(hay, &c.pat)
    }?;
    let at = from + pos;
    if c.endswith && at + n != buf.len() {
        return None;
    }
    Some(at)
}

/// Where a `byte_test`/`byte_jump` reads: after the previous match, or from the buffer start
/// (which, for stream chunks, is `base` bytes into the stream).
fn step_pos(relative: bool, prev: usize, base: usize, offset: i32) -> i64 {
    if relative {
        prev as i64 + offset as i64
    } else {
        offset as i64 - base as i64
    }
}

/// A number read at `at`, with the bitmask applied (and shifted down, as Suricata does).
fn read_masked(buf: &[u8], at: i64, n: u8, fmt: NumFmt, bitmask: Option<u64>) -> Option<u64> {
    let v = read_num(buf, at, n, fmt)?;
    Some(match bitmask {
        Some(m) => (v & m) >> m.trailing_zeros().min(63),
        None => v,
    })
}

fn read_num(buf: &[u8], at: i64, n: u8, fmt: NumFmt) -> Option<u64> {
    if at < 0 {
        return None;
    }
    let at = at as usize;
    let n = if n == 0 {
        buf.len().checked_sub(at)?.min(20)
    } else {
        n as usize
    };
    let b = buf.get(at..at.checked_add(n)?)?;
    match fmt {
        NumFmt::Big => Some(b.iter().fold(0u64, |a, &x| a << 8 | x as u64)),
        NumFmt::Little => Some(b.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64)),
        NumFmt::Str(base) => {
            let s = std::str::from_utf8(b).ok()?;
            // Suricata reads the leading digits and stops at the first non-digit.
            let end = s.find(|c: char| !c.is_digit(base)).unwrap_or(s.len());
            u64::from_str_radix(&s[..end], base).ok()
        }
    }
}

fn bits_ok(s: &Sig, f: &FlowSigs) -> bool {
    s.flowbits.iter().all(|b| match b {
        Flowbit::IsSet(ids) => ids.iter().any(|&i| f.isset(i)),
        Flowbit::IsNotSet(ids) => ids.iter().any(|&i| !f.isset(i)),
        _ => true,
    }) && s.flowints.iter().all(|x| match *x {
        Flowint::IsSet(id) => f.int(id).is_some(),
        Flowint::NotSet(id) => f.int(id).is_none(),
        Flowint::Cmp(id, c, t) => f.int(id).is_some_and(|v| {
            let t = int_arg(f, t);
            match c {
                IntCmp::Eq => v == t,
                IntCmp::Ne => v != t,
                IntCmp::Lt => v < t,
                IntCmp::Le => v <= t,
                IntCmp::Gt => v > t,
                IntCmp::Ge => v >= t,
            }
        }),
        _ => true,
    })
}

fn int_arg(f: &FlowSigs, a: IntArg) -> u32 {
    match a {
        IntArg::Value(v) => v,
        IntArg::Var(id) => f.int(id).unwrap_or(0),
    }
}

fn apply_bits(s: &Sig, f: &mut FlowSigs) {
    // `flowint` operations run after the match, in rule order, as Suricata's post-match list.
    for x in &s.flowints {
        match *x {
            Flowint::Set(id, t) => f.set_int(id, int_arg(f, t)),
            Flowint::Add(id, t) => {
                let t = int_arg(f, t);
                let v = f.int(id).map_or(t, |v| v.wrapping_add(t));
                f.set_int(id, v)
            }
            Flowint::Sub(id, t) => {
                if let Some(v) = f.int(id) {
                    let t = int_arg(f, t);
                    f.set_int(id, v.wrapping_sub(t))
                }
            }
            _ => {}
        }
    }
    for b in &s.flowbits {
        match b {
            Flowbit::Set(ids) => ids.iter().for_each(|&i| f.set(i)),
            Flowbit::Unset(ids) => ids.iter().for_each(|&i| f.unset(i)),
            Flowbit::Toggle(ids) => {
                for &i in ids {
                    if f.isset(i) {
                        f.unset(i)
                    } else {
                        f.set(i)
                    }
                }
            }
            _ => {}
        }
    }
}

/// Host and host-pair bits set by `xbits`, at most this many (expired ones go first, then an
/// arbitrary one, counted).
pub const MAX_XBITS: usize = 65_536;

fn xbit_key(x: &Xbit, p: &Packet<'_>, id: u32) -> (u32, IpAddr, IpAddr) {
    let z = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    match x.track {
        Track::Src => (id, p.src, z),
        Track::Dst => (id, p.dst, z),
        // A pair is the same whichever way the packet goes.
        _ => (id, p.src.min(p.dst), p.src.max(p.dst)),
    }
}

fn xbits_ok(s: &Sig, p: &Packet<'_>, sc: &Scratch) -> bool {
    s.xbits.iter().all(|x| {
        let is = |ids: &[u32]| {
            ids.iter().any(|&id| {
                sc.xbits
                    .get(&xbit_key(x, p, id))
                    .is_some_and(|&until| until > p.now_ns)
            })
        };
        match &x.op {
            Flowbit::IsSet(ids) => is(ids),
            Flowbit::IsNotSet(ids) => !is(ids),
            _ => true,
        }
    })
}

fn apply_xbits(s: &Sig, p: &Packet<'_>, sc: &mut Scratch) {
    for x in &s.xbits {
        let until = p.now_ns + x.expire as i64 * 1_000_000_000;
        match &x.op {
            Flowbit::Set(ids) | Flowbit::Toggle(ids) => {
                for &id in ids {
                    let k = xbit_key(x, p, id);
                    let on = sc.xbits.get(&k).is_some_and(|&u| u > p.now_ns);
                    if matches!(x.op, Flowbit::Toggle(_)) && on {
                        sc.xbits.remove(&k);
                        continue;
                    }
                    if !sc.xbits.contains_key(&k) && sc.xbits.len() >= MAX_XBITS {
                        let now = p.now_ns;
                        sc.xbits.retain(|_, u| *u > now);
                        if sc.xbits.len() >= MAX_XBITS {
                            if let Some(o) = sc.xbits.keys().next().copied() {
                                sc.xbits.remove(&o);
                            }
                            sc.xbit_evictions += 1;
                        }
                    }
                    sc.xbits.insert(k, until);
                }
            }
            Flowbit::Unset(ids) => {
                for &id in ids {
                    sc.xbits.remove(&xbit_key(x, p, id));
                }
            }
            _ => {}
        }
    }
}

fn threshold_ok(s: &Sig, p: &Packet<'_>, sc: &mut Scratch) -> bool {
    let Some(t) = s.threshold else {
        return true;
    };
    let (Threshold::Limit {
        track,
        count,
        seconds,
    }
    | Threshold::Threshold {
        track,
        count,
        seconds,
    }
    | Threshold::Both {
        track,
        count,
        seconds,
    }
    | Threshold::Filter {
        track,
        count,
        seconds,
    }) = t;
    let z = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    let (a, b) = match track {
        Track::Src => (p.src, z),
        Track::Dst => (p.dst, z),
        Track::Both => (p.src, p.dst),
        Track::Rule => (z, z),
    };
    let key = ((s.gid as u64) << 40 | s.sid, a, b);
    let window = seconds as i64 * 1_000_000_000;
    if !sc.thresholds.contains_key(&key) && sc.thresholds.len() >= MAX_THRESHOLDS {
        let now = p.now_ns;
        sc.thresholds.retain(|_, (start, _)| now - *start < window);
        if sc.thresholds.len() >= MAX_THRESHOLDS {
            // Evict one entry (hash order: effectively random).
            if let Some(k) = sc.thresholds.keys().next().copied() {
                sc.thresholds.remove(&k);
            }
            sc.threshold_evictions += 1;
        }
    }
    let e = sc.thresholds.entry(key).or_insert((p.now_ns, 0));
    if p.now_ns - e.0 >= window {
        *e = (p.now_ns, 0);
    }
    e.1 = e.1.saturating_add(1);
    let n = e.1;
    match t {
        Threshold::Limit { .. } => n <= count,
        Threshold::Threshold { .. } => {
            if n >= count {
                *e = (p.now_ns, 0);
                true
            } else {
                false
            }
        }
        Threshold::Both { .. } => n == count,
        Threshold::Filter { .. } => n > count,
    }
}
