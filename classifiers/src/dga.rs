//! Domain generation algorithms, written here from public descriptions of the families.
//!
//! Malware that finds its server through a DGA derives, from the date and a seed, a list of
//! names and tries them in turn; the defender who knows the algorithm can list them ahead, and
//! the defender who does not must recognise their shape. These generators give the domain model
//! names of that shape without training on anyone's collected data. Each follows what the
//! public analyses of the family describe (the character set, the length rule, the suffixes,
//! the way the seed evolves: a Park-Miller generator for Ramnit, shift-and-xor of the date for
//! CryptoLocker, the four-character walk over a seed name for Banjori, word pairs for
//! Suppobox); none claims to be bit-exact with the malware, which does not matter for learning
//! what the names look like.
//!
//! Families are split in two: [`TRAIN`] feeds training, [`HELD_OUT`] is never trained on and
//! measures whether the model generalises to families it has not seen. Dictionary families
//! (names made of real words) are flagged, as they are reported apart.

/// A small deterministic generator (SplitMix64) for the choices a description leaves open.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Picks one element.
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// A family: its name, whether its names are made of dictionary words, and its generator
/// (`seed` selects the "day", `n` names are appended).
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Family name as analysts call it.
    pub name: &'static str,
    /// Names made of real words (reported apart: character statistics barely separate them).
    pub dictionary: bool,
    /// Appends `n` names for the day `seed`.
    pub generate: fn(seed: u64, n: usize, out: &mut Vec<String>),
}

/// Families the shipped model is trained on.
pub const TRAIN: &[Family] = &[
    Family {
        name: "cryptolocker",
        dictionary: false,
        generate: cryptolocker,
    },
    Family {
        name: "conficker",
        dictionary: false,
        generate: conficker,
    },
    Family {
        name: "necurs",
        dictionary: false,
        generate: necurs,
    },
    Family {
        name: "banjori",
        dictionary: false,
        generate: banjori,
    },
    Family {
        name: "ramnit",
        dictionary: false,
        generate: ramnit,
    },
    Family {
        name: "pykspa",
        dictionary: false,
        generate: pykspa,
    },
    Family {
        name: "qakbot",
        dictionary: false,
        generate: qakbot,
    },
    Family {
        name: "suppobox",
        dictionary: true,
        generate: suppobox,
    },
    Family {
        name: "locky",
        dictionary: false,
        generate: locky,
    },
    Family {
        name: "simda",
        dictionary: false,
        generate: simda,
    },
    Family {
        name: "murofet",
        dictionary: false,
        generate: murofet,
    },
    Family {
        name: "shiotob",
        dictionary: false,
        generate: shiotob,
    },
    Family {
        name: "bamital",
        dictionary: false,
        generate: bamital,
    },
    Family {
        name: "chinad",
        dictionary: false,
        generate: chinad,
    },
    Family {
        name: "gameover",
        dictionary: false,
        generate: gameover,
    },
];

/// Families never trained on, for measuring generalisation.
pub const HELD_OUT: &[Family] = &[
    Family {
        name: "tinba",
        dictionary: false,
        generate: tinba,
    },
    Family {
        name: "corebot",
        dictionary: false,
        generate: corebot,
    },
    Family {
        name: "dyre",
        dictionary: false,
        generate: dyre,
    },
    Family {
        name: "kraken",
        dictionary: false,
        generate: kraken,
    },
    Family {
        name: "matsnu",
        dictionary: true,
        generate: matsnu,
    },
];

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

fn date(seed: u64) -> (u32, u32, u32) {
    // A day between 2010 and 2030.
    let day = (seed % (20 * 365)) as u32;
    (2010 + day / 365, 1 + (day % 365) / 31 % 12, 1 + day % 28)
}

/// CryptoLocker: year, month and day each scrambled by shift-and-xor steps every character, the
/// letter being their xor modulo 25; 12 to 15 letters; seven suffixes.
pub fn cryptolocker(seed: u64, n: usize, out: &mut Vec<String>) {
    const TLDS: &[&str] = &["com", "net", "biz", "ru", "org", "co.uk", "info"];
    let (y0, m0, d0) = date(seed);
    for i in 0..n as u32 {
        let mut y = y0.wrapping_add(i.wrapping_mul(0x1f3));
        let mut m = m0.wrapping_add(i);
        let mut d = d0.wrapping_add(i.wrapping_mul(7) ^ (seed as u32));
        let len = 12 + (y0 ^ i) % 4;
        let mut s = String::with_capacity(20);
        for _ in 0..len {
            y = ((y ^ y.wrapping_mul(8)) >> 11) ^ ((y & 0xFFFF_FFF0) << 17);
            m = ((m ^ m.wrapping_mul(4)) >> 25) ^ ((m & 0xFFFF_FFF8) << 4);
            d = ((d ^ (d << 13)) >> 19) ^ ((d & 0xFFFF_FFFE) << 12);
            s.push((b'a' + ((y ^ m ^ d) % 25) as u8) as char);
        }
        s.push('.');
        s.push_str(TLDS[i as usize % TLDS.len()]);
        out.push(s);
    }
}

/// Conficker.C: 4 to 10 random letters under one of about a hundred country and generic
/// suffixes, 50,000 names a day.
pub fn conficker(seed: u64, n: usize, out: &mut Vec<String>) {
    const TLDS: &[&str] = &[
        "ac", "ae", "ag", "am", "as", "at", "be", "bo", "bz", "ca", "cd", "ch", "cl", "cn",
        "co.cr", "co.id", "co.il", "co.ke", "co.kr", "co.nz", "co.ug", "co.uk", "co.vi", "co.za",
        "com.ag", "com.ai", "com.ar", "com.bo", "com.br", "com.bs", "com.co", "com.do", "com.fj",
        "com.gh", "com.gl", "com.gt", "com.hn", "com.jm", "com.ki", "com.lc", "com.mt", "com.mx",
        "com.ng", "com.ni", "com.pa", "com.pe", "com.ph", "com.pr", "com.pt", "com.py", "com.sv",
        "com.tr", "com.tt", "com.tw", "com.ua", "com.uy", "com.ve", "cx", "cz", "dj", "dk", "dm",
        "ec", "es", "fm", "fr", "gd", "gr", "gs", "gy", "hk", "hn", "ht", "hu", "ie", "im", "in",
        "ir", "is", "kn", "kz", "la", "lc", "li", "lu", "lv", "ly", "md", "me", "mn", "ms", "mu",
        "mw", "my", "nf", "nl", "no", "pe", "pk", "pl", "ps", "ro", "ru", "sc", "sg", "sh", "sk",
        "su", "tc", "tj", "tl", "tn", "to", "tw", "us", "vc", "vn",
    ];
    let mut r = Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
    for _ in 0..n {
        let len = 4 + r.below(7) as usize;
        let mut s: String = (0..len).map(|_| *r.pick(LOWER) as char).collect();
        s.push('.');
        s.push_str(r.pick::<&str>(TLDS));
        out.push(s);
    }
}

/// Necurs: a 32-round multiply-and-shift pseudo-random function of the date, the sequence number
/// and a seed; 7 to 21 letters; 43 suffixes including rare country codes.
pub fn necurs(seed: u64, n: usize, out: &mut Vec<String>) {
    const TLDS: &[&str] = &[
        "tj", "in", "jp", "tw", "ac", "cm", "la", "mn", "so", "sh", "sc", "nu", "nf", "mu", "ms",
        "mx", "ki", "im", "cx", "cc", "tv", "bz", "me", "eu", "de", "ru", "co", "su", "pw", "kz",
        "sx", "us", "ug", "ir", "to", "ga", "com", "net", "org", "biz", "xxx", "pro", "bit",
    ];
    fn prf(mut v: u64) -> u64 {
        for _ in 0..32 {
            v = v.wrapping_mul(0x0010_dcd0_0000_0000 ^ 0x5851_f42d) ^ (v >> 29);
            v = v.wrapping_add(0x0000_0000_b5e1_c5a3) & 0xffff_ffff_ffff;
        }
        v
    }
    let (y, m, d) = date(seed);
    for i in 0..n as u64 {
        let base = prf((y as u64) ^ ((m as u64) << 16) ^ ((d as u64) << 24) ^ (i << 32) ^ seed);
        let mut v = base;
        let len = 7 + (v % 15) as usize;
        let mut s = String::with_capacity(28);
        for _ in 0..len {
            v = prf(v);
            s.push((b'a' + (v % 25) as u8) as char);
        }
        s.push('.');
        s.push_str(TLDS[(prf(v ^ 0x55) % TLDS.len() as u64) as usize]);
        out.push(s);
    }
}

/// Banjori: a seed name whose first four letters are rewritten from one another each step
/// (`a = a+d`, `b = a+2b`, `c = a+c-1`, `d = b+c+d`, all mod 26), the rest kept: long names
/// that share an English-looking tail and differ in a random-looking head.
pub fn banjori(seed: u64, n: usize, out: &mut Vec<String>) {
    const SEEDS: &[&str] = &[
        "earnestnessbiophysicalohax",
        "kwtoestnessbiophysicalohax",
        "andersensinaix",
        "rvcxestnessbiophysicalohax",
        "somestringsomewhereforth",
        "forestmeadowbirdsongwiax",
        "lanternquietharbourikos",
        "silvermorningcoastlineuvu",
    ];
    let mut name: Vec<u8> = SEEDS[(seed % SEEDS.len() as u64) as usize]
        .bytes()
        .collect();
    let to_letter = |v: u32| b'a' + ((v + 26 * 8 - b'a' as u32) % 26) as u8;
    // Skip ahead by the day so different seeds give different stretches of the walk.
    for step in 0..(seed % 97) as usize + n {
        let d = name.iter().map(|&c| c as u32).collect::<Vec<_>>();
        name[0] = to_letter(d[0] + d[3]);
        name[1] = to_letter(name[0] as u32 + 2 * d[1]);
        name[2] = to_letter(name[0] as u32 + d[2] - 1);
        name[3] = to_letter(name[1] as u32 + name[2] as u32 + d[3]);
        if step >= (seed % 97) as usize {
            let mut s = String::from_utf8_lossy(&name).into_owned();
            s.push_str(".com");
            out.push(s);
        }
    }
}

/// Ramnit: a Park-Miller minimal-standard generator (16807 mod 2^31-1) seeded per campaign;
/// each name 8 to 19 letters ('a' + r mod 25) under `.com`.
pub fn ramnit(seed: u64, n: usize, out: &mut Vec<String>) {
    let mut s32 = (seed as u32 ^ 0x4f2a_19c3) % 0x7fff_fffe + 1;
    let mut next = |m: u32| {
        let hi = s32 / 127_773;
        let lo = s32 % 127_773;
        let t = 16_807i64 * lo as i64 - 2_836i64 * hi as i64;
        s32 = if t > 0 {
            t as u32
        } else {
            (t + 0x7fff_ffff) as u32
        };
        s32 % m
    };
    for _ in 0..n {
        let len = next(12) + 8;
        let s: String = (0..len).map(|_| (b'a' + next(25) as u8) as char).collect();
        out.push(s + ".com");
    }
}

/// Pykspa: 6 to 12 letters from a seeded linear-congruential walk, alternating a few suffixes.
/// Looser than the malware's two DGAs, whose arithmetic walks favour vowels (`MODEL.md`, limits).
pub fn pykspa(seed: u64, n: usize, out: &mut Vec<String>) {
    const TLDS: &[&str] = &["com", "net", "org", "info", "cc"];
    let mut x = (seed as u32).wrapping_mul(0x343fd).wrapping_add(0x269ec3);
    let mut next = || {
        x = x.wrapping_mul(0x343fd).wrapping_add(0x269ec3);
        (x >> 16) & 0x7fff
    };
    for _ in 0..n {
        let len = 6 + next() % 7;
        let s: String = (0..len)
            .map(|_| (b'a' + (next() % 26) as u8) as char)
            .collect();
        out.push(format!("{s}.{}", TLDS[(next() % 5) as usize]));
    }
}

/// Qakbot: 8 to 25 letters from a Mersenne-style generator seeded with the date's digest; a
/// handful of generic suffixes.
pub fn qakbot(seed: u64, n: usize, out: &mut Vec<String>) {
    const TLDS: &[&str] = &["com", "net", "org", "info", "biz", "org"];
    let mut r = Rng::new(seed.rotate_left(17) ^ 0x51ab_0c47);
    for _ in 0..n {
        let len = 8 + r.below(18) as usize;
        let s: String = (0..len).map(|_| *r.pick(LOWER) as char).collect();
        out.push(format!("{s}.{}", r.pick(TLDS)));
    }
}

/// Word list for [`suppobox`]: common English words (written here).
const WORDS_A: &[&str] = &[
    "able",
    "about",
    "above",
    "across",
    "action",
    "actually",
    "after",
    "again",
    "against",
    "agree",
    "ahead",
    "allow",
    "almost",
    "alone",
    "along",
    "already",
    "always",
    "among",
    "amount",
    "animal",
    "another",
    "answer",
    "anyone",
    "appear",
    "apple",
    "area",
    "around",
    "arrive",
    "article",
    "attack",
    "author",
    "autumn",
    "avenue",
    "award",
    "baby",
    "back",
    "balance",
    "ball",
    "bank",
    "base",
    "battle",
    "beach",
    "bear",
    "beat",
    "beauty",
    "became",
    "because",
    "become",
    "bedroom",
    "before",
    "begin",
    "behind",
    "believe",
    "below",
    "better",
    "between",
    "beyond",
    "bird",
    "black",
    "blood",
    "board",
    "body",
    "book",
    "border",
    "bottle",
    "bottom",
    "branch",
    "bread",
    "break",
    "bridge",
    "bright",
    "bring",
    "brother",
    "brown",
    "build",
    "burn",
    "business",
    "butter",
    "cable",
    "call",
    "camera",
    "camp",
    "candle",
    "capital",
    "captain",
    "card",
    "care",
    "carry",
    "case",
    "catch",
    "cause",
    "center",
    "certain",
    "chair",
    "chance",
    "change",
    "charge",
    "cheap",
    "check",
    "cheese",
    "chicken",
    "child",
    "choice",
    "church",
    "circle",
    "city",
    "class",
    "clean",
    "clear",
    "climb",
    "clock",
    "close",
    "cloud",
    "coast",
    "coffee",
    "cold",
    "color",
    "common",
    "company",
    "corner",
    "cotton",
    "could",
    "country",
    "couple",
    "course",
    "cover",
    "cream",
    "cross",
    "crowd",
    "dance",
    "dark",
    "daughter",
    "dead",
    "deal",
    "dear",
    "decide",
    "deep",
    "degree",
    "desert",
    "design",
    "dinner",
    "direct",
    "doctor",
    "dollar",
    "double",
    "dream",
    "dress",
    "drink",
    "drive",
    "during",
    "early",
    "earth",
    "east",
    "easy",
    "edge",
    "effect",
    "eight",
    "either",
    "energy",
    "engine",
    "enough",
    "enter",
    "evening",
    "event",
    "every",
    "except",
    "experience",
    "face",
    "fact",
    "fair",
    "fall",
    "family",
    "farm",
    "fast",
    "father",
    "feather",
    "feel",
    "field",
    "fight",
    "figure",
    "final",
    "finger",
    "finish",
    "fire",
    "first",
    "flat",
    "floor",
    "flower",
    "follow",
    "force",
    "forest",
    "forget",
    "form",
    "forward",
    "free",
    "fresh",
    "friend",
    "front",
    "fruit",
    "full",
    "garden",
    "gather",
    "general",
    "gentle",
    "glass",
    "gold",
    "good",
    "grass",
    "great",
    "green",
    "ground",
    "group",
    "grow",
    "guess",
    "half",
    "hand",
    "happen",
    "happy",
    "hard",
    "heart",
    "heavy",
    "help",
    "high",
    "history",
    "hold",
    "home",
    "hope",
    "horse",
    "hotel",
    "house",
    "hundred",
    "hunt",
    "husband",
    "idea",
    "inch",
    "island",
    "join",
    "judge",
    "jump",
    "just",
    "keep",
    "kitchen",
    "knife",
    "know",
    "ladder",
    "lake",
    "land",
    "large",
    "laugh",
    "lead",
    "learn",
    "leave",
    "letter",
    "level",
    "light",
    "line",
    "listen",
    "little",
    "live",
    "long",
    "look",
    "lucky",
    "machine",
    "major",
    "market",
    "matter",
    "measure",
    "member",
    "metal",
    "middle",
    "might",
    "minute",
    "mirror",
    "money",
    "month",
    "morning",
    "mother",
    "mountain",
    "music",
    "nation",
    "nature",
    "near",
    "never",
    "night",
    "north",
    "number",
    "ocean",
    "office",
    "often",
    "orange",
    "order",
    "other",
    "paper",
    "party",
    "pattern",
    "people",
    "perhaps",
    "person",
    "picture",
    "piece",
    "place",
    "plain",
    "plant",
    "please",
    "pocket",
    "point",
    "power",
    "present",
    "pretty",
    "print",
    "problem",
    "produce",
    "quick",
    "quiet",
    "rather",
    "reach",
    "ready",
    "reason",
    "record",
    "river",
    "road",
    "round",
    "safe",
    "salt",
    "school",
    "science",
    "season",
    "second",
    "settle",
    "shadow",
    "shall",
    "share",
    "shoulder",
    "silver",
    "simple",
    "sister",
    "small",
    "smile",
    "snow",
    "soft",
    "soldier",
    "south",
    "speak",
    "spring",
    "square",
    "stand",
    "station",
    "steel",
    "stone",
    "storm",
    "story",
    "strange",
    "stream",
    "street",
    "strong",
    "student",
    "summer",
    "supply",
    "table",
    "teach",
    "thick",
    "thousand",
    "through",
    "together",
    "travel",
    "trouble",
    "valley",
    "village",
    "visit",
    "voice",
    "water",
    "weather",
    "wheel",
    "whether",
    "window",
    "winter",
    "wonder",
    "world",
    "yellow",
    "young",
];

/// Suppobox: two words from its list joined, under `.net` (some campaigns `.ru`).
pub fn suppobox(seed: u64, n: usize, out: &mut Vec<String>) {
    let mut r = Rng::new(seed ^ 0x5u64.rotate_left(40));
    for _ in 0..n {
        let a = r.pick(WORDS_A);
        let b = r.pick(WORDS_A);
        let tld = if r.below(5) == 0 { "ru" } else { "net" };
        out.push(format!("{a}{b}.{tld}"));
    }
}

/// Locky: 5 to 17 letters from a date- and seed-keyed rotate-and-multiply hash; ten suffixes.
pub fn locky(seed: u64, n: usize, out: &mut Vec<String>) {
    const TLDS: &[&str] = &[
        "ru", "info", "biz", "click", "su", "work", "pl", "org", "pw", "xyz",
    ];
    let (y, m, d) = date(seed);
    for i in 0..n as u32 {
        let mut k: u32 = (y.wrapping_add(0x1bf5).wrapping_mul(0xb11924e1))
            .rotate_right(7)
            .wrapping_add(d / 2 * 0x0027_100d)
            .wrapping_add((m.wrapping_mul(0xd8efffff)).rotate_right(7))
            .wrapping_add(i.wrapping_mul(0x9e3779b1))
            ^ (seed as u32);
        k = k.wrapping_mul(0xb11924e1).rotate_right(7);
        let len = 5 + k % 11 + (k >> 8) % 2;
        let mut s = String::with_capacity(24);
        for _ in 0..len {
            k = k
                .rotate_left(5)
                .wrapping_mul(0xb11924e1)
                .wrapping_add(0x27100001);
            s.push((b'a' + (k >> 7) as u8 % 25) as char);
        }
        s.push('.');
        s.push_str(TLDS[(k % TLDS.len() as u32) as usize]);
        out.push(s);
    }
}

/// Simda: pronounceable names alternating consonants and vowels, 7 to 11 letters.
pub fn simda(seed: u64, n: usize, out: &mut Vec<String>) {
    const CONS: &[u8] = b"qwrtpsdfghjklzxcvbnm";
    const VOW: &[u8] = b"eyuioa";
    const TLDS: &[&str] = &["com", "net", "info", "eu", "info", "com"];
    let mut r = Rng::new(seed.wrapping_add(0x5d4a));
    for _ in 0..n {
        let len = 7 + r.below(5) as usize;
        let start_vowel = r.below(4) == 0;
        let s: String = (0..len)
            .map(|j| {
                let vowel = (j % 2 == 1) != start_vowel;
                (if vowel { *r.pick(VOW) } else { *r.pick(CONS) }) as char
            })
            .collect();
        out.push(format!("{s}.{}", r.pick(TLDS)));
    }
}

/// Murofet (a Zeus variant): letters taken from an MD5-like digest of the date and a counter,
/// each byte folded into 'a'..'y', 8 to 16 of them. Shorter than the malware's three DGAs
/// (about 14, 25 and 40 characters, the last with digits: `MODEL.md`, limits).
pub fn murofet(seed: u64, n: usize, out: &mut Vec<String>) {
    const TLDS: &[&str] = &["biz", "info", "org", "net", "com", "ru"];
    let (y, m, d) = date(seed);
    for i in 0..n as u64 {
        let mut r = Rng::new(((y as u64) << 40) ^ ((m as u64) << 32) ^ ((d as u64) << 24) ^ i);
        let mut s = String::with_capacity(24);
        let len = 8 + r.below(9) as usize;
        while s.len() < len {
            let word = r.next_u64();
            for k in 0..8 {
                if s.len() == len {
                    break;
                }
                let b = (word >> (8 * k)) as u8;
                // The published scheme keeps letters from both nibbles.
                s.push((b'a' + ((b & 0x1f) ^ (b >> 5)) % 25) as char);
            }
        }
        out.push(format!("{s}.{}", TLDS[(i % 6) as usize]));
    }
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Shiotob (URLZone): 12 to 15 letters and digits, each derived from the previous name by a
/// shift-and-add walk; `.com` and `.net`.
pub fn shiotob(seed: u64, n: usize, out: &mut Vec<String>) {
    let mut st: u32 = (seed as u32).wrapping_mul(0x01b8_73f3) ^ 0x3e7a_91c5;
    for i in 0..n {
        st = st.wrapping_mul(0x0019_660d).wrapping_add(0x3c6e_f35f);
        let len = 12 + st % 4;
        let mut s = String::with_capacity(16);
        for _ in 0..len {
            st = (st << 5).wrapping_add(st >> 3).wrapping_add(0x9e37);
            s.push(ALNUM[(st % 36) as usize] as char);
        }
        out.push(format!("{s}.{}", if i % 2 == 0 { "com" } else { "net" }));
    }
}

/// Bamital: the MD5-style hex digest (32 digits) of the date and a counter, under a few suffixes.
pub fn bamital(seed: u64, n: usize, out: &mut Vec<String>) {
    use sha2::{Digest, Sha256};
    const TLDS: &[&str] = &["info", "org", "co.cc", "cz.cc"];
    let (y, m, d) = date(seed);
    for i in 0..n {
        let h = Sha256::digest(format!("bamital/{y}{m:02}{d:02}/{i}").as_bytes());
        let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
        out.push(format!("{hex}.{}", TLDS[i % TLDS.len()]));
    }
}

/// Chinad: 16 letters and digits from a per-day hash, seven suffixes.
pub fn chinad(seed: u64, n: usize, out: &mut Vec<String>) {
    const TLDS: &[&str] = &["com", "org", "net", "biz", "info", "ru", "cn"];
    let mut r = Rng::new(seed ^ 0xc41a_0d00);
    for _ in 0..n {
        let s: String = (0..16).map(|_| *r.pick(ALNUM) as char).collect();
        out.push(format!("{s}.{}", r.pick(TLDS)));
    }
}

/// GameOver Zeus (the 2014 variant): 20 to 28 letters and digits, four generic suffixes.
pub fn gameover(seed: u64, n: usize, out: &mut Vec<String>) {
    const TLDS: &[&str] = &["com", "net", "org", "biz"];
    let mut r = Rng::new(seed.rotate_left(29) ^ 0x6a3e);
    for _ in 0..n {
        let len = 20 + r.below(9) as usize;
        let s: String = (0..len)
            .map(|_| {
                // Letters twice as likely as digits, as in published samples.
                if r.below(3) == 0 {
                    (b'0' + r.below(10) as u8) as char
                } else {
                    *r.pick(LOWER) as char
                }
            })
            .collect();
        out.push(format!("{s}.{}", r.pick(TLDS)));
    }
}

/// Tinba: each name is 12 letters made from the previous name and a 16-character seed string:
/// a byte walks over the previous name's characters, mixed with the seed's byte sum, and a
/// letter is kept only when it falls between `b` and `y` (otherwise the sum moves on by one and
/// the walk repeats). Every name is tried under each suffix of the sample's set (four sets are
/// published). The real names in the research-use sample are 12 letters from `b` to `y`
/// (`generators_follow_the_real_samples`).
pub fn tinba(seed: u64, n: usize, out: &mut Vec<String>) {
    const SETS: &[&[&str]] = &[
        &["com"],
        &["com", "net", "in", "ru"],
        &["pw", "us", "xyz", "club"],
        &["com", "net", "biz", "org"],
    ];
    let mut r = Rng::new(seed ^ 0x7157_ba00);
    let tlds = SETS[(seed % SETS.len() as u64) as usize];
    let key: Vec<u8> = (0..16).map(|_| *r.pick(ALNUM)).collect();
    let mut sum: u32 = key.iter().map(|&b| b as u32).sum();
    // The first name is hard-coded in the binary; here a random 12 letters and its dot.
    let mut name: Vec<u8> = (0..12).map(|_| *r.pick(LOWER)).collect();
    name.push(b'.');
    let start = out.len();
    while out.len() - start < n {
        let mut tmp = key[15] as u32;
        let mut next = [0u8; 12];
        for (i, c) in next.iter_mut().enumerate() {
            loop {
                tmp = tmp.wrapping_add(name[i] as u32);
                tmp ^= sum & 0xff;
                tmp = tmp.wrapping_add(name[i + 1] as u32) & 0xff;
                if (b'b' as u32..=b'y' as u32).contains(&tmp) {
                    *c = tmp as u8;
                    break;
                }
                sum = sum.wrapping_add(1);
            }
        }
        name[..12].copy_from_slice(&next);
        let base = String::from_utf8_lossy(&next);
        for tld in tlds.iter().take(n - (out.len() - start)) {
            out.push(format!("{base}.{tld}"));
        }
    }
}

/// Corebot: a linear congruential generator (multiplier 1664525, increment 1013904223) seeded
/// from the date draws a length of 12 to 23 and then each character, from `a` to `y` and `0`
/// to `8` (the analysed binary builds its alphabet with end-exclusive ranges, so `z` and `9`
/// never appear), under `ddns.net`. The real names in the research-use sample have exactly
/// that alphabet and parent (`generators_follow_the_real_samples`).
pub fn corebot(seed: u64, n: usize, out: &mut Vec<String>) {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxy012345678";
    let (y, m, d) = date(seed);
    let mut r: u32 = 0x1dba_8930u32
        .wrapping_add(y)
        .wrapping_add(((1 << 16) + (m << 8)) | d)
        .wrapping_add((seed as u32).wrapping_mul(0x9e37_79b9));
    let mut next = move || {
        r = r.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        r
    };
    for _ in 0..n {
        let len = 12 + next() % 12;
        let s: String = (0..len)
            .map(|_| CHARS[(next() % CHARS.len() as u32) as usize] as char)
            .collect();
        out.push(format!("{s}.ddns.net"));
    }
}

/// Dyre: one letter and 32 hexadecimal digits (a SHA-256 of the date and counter), under eight
/// country suffixes.
pub fn dyre(seed: u64, n: usize, out: &mut Vec<String>) {
    use sha2::{Digest, Sha256};
    const TLDS: &[&str] = &["cc", "ws", "to", "in", "hk", "cn", "tk", "so"];
    let (y, m, d) = date(seed);
    for i in 0..n {
        let h = Sha256::digest(format!("{y}-{m}-{d}/{i}/{seed}").as_bytes());
        let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
        let first = (b'a' + h[16] % 26) as char;
        out.push(format!("{first}{hex}.{}", TLDS[i % TLDS.len()]));
    }
}

/// Kraken (Bobax), both published versions: a C library style linear congruential generator
/// (multiplier 1103515245, increment 12435, bits 8 to 22 of each state) gives three draws for
/// the length, then one uniform letter per character. The first version makes 6 to 11 letters
/// under four dynamic-DNS parents, the second 7 to 12 under `com`, `net`, `tv` and `cc`; the
/// names alternate between them. There is no vowel pattern: the real names in the research-use
/// sample have vowels at the uniform share, 5 in 26 (`generators_follow_the_real_samples`).
pub fn kraken(seed: u64, n: usize, out: &mut Vec<String>) {
    const V1: &[&str] = &["dyndns.org", "yi.org", "dynserv.com", "mooo.com"];
    const V2: &[&str] = &["com", "net", "tv", "cc"];
    let mut r: u32 = (seed as u32).wrapping_mul(0x0a7a_3e11) ^ 24_938_314;
    let mut draw = move || {
        r = r.wrapping_mul(1_103_515_245).wrapping_add(12_435);
        (r >> 8) % 32_768
    };
    for i in 0..n {
        let (a, b, c) = (draw(), draw(), draw());
        let v1 = i % 2 == 0;
        let len = if v1 {
            a.wrapping_mul(b).wrapping_sub(c) % 6 + 6
        } else {
            a.wrapping_mul(b).wrapping_add(c) % 6 + 7
        };
        let s: String = (0..len)
            .map(|_| (b'a' + (draw() % 26) as u8) as char)
            .collect();
        let parents = if v1 { V1 } else { V2 };
        out.push(format!("{s}.{}", parents[(i / 2) % 4]));
    }
}

/// Word list for [`matsnu`] (held out): verbs and nouns, none shared with [`WORDS_A`].
const WORDS_B: &[&str] = &[
    "accept",
    "account",
    "adjust",
    "admire",
    "advise",
    "afford",
    "alarm",
    "anchor",
    "angle",
    "arrange",
    "attend",
    "badge",
    "bake",
    "bargain",
    "basket",
    "bathe",
    "behave",
    "belong",
    "blanket",
    "blink",
    "boast",
    "borrow",
    "bounce",
    "brake",
    "breathe",
    "brick",
    "bubble",
    "bucket",
    "buckle",
    "bump",
    "cabbage",
    "canvas",
    "carpet",
    "carve",
    "castle",
    "cellar",
    "chalk",
    "chase",
    "chimney",
    "chop",
    "claim",
    "clap",
    "collar",
    "comb",
    "compare",
    "complain",
    "copper",
    "crack",
    "crash",
    "crawl",
    "cushion",
    "damage",
    "deliver",
    "depend",
    "desk",
    "divide",
    "drawer",
    "drown",
    "drum",
    "dust",
    "educate",
    "embarrass",
    "employ",
    "empty",
    "escape",
    "examine",
    "excuse",
    "expand",
    "explain",
    "fasten",
    "fetch",
    "file",
    "flap",
    "flood",
    "fold",
    "frame",
    "frighten",
    "gaze",
    "glove",
    "glue",
    "grab",
    "grease",
    "guard",
    "hammer",
    "handle",
    "harm",
    "hook",
    "hover",
    "hurry",
    "identify",
    "ignore",
    "imagine",
    "improve",
    "inform",
    "inject",
    "invent",
    "jacket",
    "jelly",
    "kettle",
    "kneel",
    "knot",
    "label",
    "launch",
    "lever",
    "lick",
    "magnet",
    "manage",
    "march",
    "marble",
    "mend",
    "milk",
    "mourn",
    "muscle",
    "nail",
    "needle",
    "nest",
    "obey",
    "object",
    "obtain",
    "offend",
    "oven",
    "pack",
    "paddle",
    "paint",
    "parcel",
    "pause",
    "pedal",
    "pencil",
    "permit",
    "pinch",
    "plug",
    "polish",
    "possess",
    "pour",
    "pray",
    "preach",
    "prefer",
    "pretend",
    "prevent",
    "puncture",
    "punish",
    "rabbit",
    "rail",
    "rattle",
    "receipt",
    "reflect",
    "refuse",
    "reject",
    "relax",
    "remind",
    "repair",
    "repeat",
    "request",
    "rescue",
    "retire",
    "rinse",
    "robin",
    "rotate",
    "saddle",
    "scatter",
    "scrape",
    "screw",
    "scrub",
    "shiver",
    "shrug",
    "sneeze",
    "spade",
    "spill",
    "sponge",
    "spoon",
    "squeak",
    "stamp",
    "stitch",
    "strap",
    "suspect",
    "switch",
    "tangle",
    "thumb",
    "tickle",
    "tremble",
    "trumpet",
    "unlock",
    "vanish",
    "wander",
    "whistle",
    "wobble",
    "wrap",
    "yawn",
    "zipper",
];

/// Matsnu: two or three verbs and nouns joined, sometimes with hyphens, 24 or more characters,
/// under `.com`.
pub fn matsnu(seed: u64, n: usize, out: &mut Vec<String>) {
    let mut r = Rng::new(seed ^ 0x3a75_0001);
    for _ in 0..n {
        let hyphen = r.below(3) == 0;
        let mut s = String::with_capacity(40);
        while s.len() < 24 {
            if !s.is_empty() && hyphen {
                s.push('-');
            }
            s.push_str(r.pick::<&str>(WORDS_B));
        }
        out.push(s + ".com");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_gives_distinct_valid_names() {
        for f in TRAIN.iter().chain(HELD_OUT) {
            let mut v = Vec::new();
            (f.generate)(3, 500, &mut v);
            assert_eq!(v.len(), 500, "{}", f.name);
            let distinct: std::collections::HashSet<_> = v.iter().collect();
            assert!(
                distinct.len() > 400,
                "{}: {} distinct",
                f.name,
                distinct.len()
            );
            for name in &v {
                assert!(name.len() <= 253, "{name}");
                for label in name.split('.') {
                    assert!(!label.is_empty() && label.len() <= 63, "{}: {name}", f.name);
                    assert!(
                        label
                            .bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                        "{}: {name}",
                        f.name
                    );
                }
            }
            // Deterministic: the same day gives the same names; another day others.
            let mut again = Vec::new();
            (f.generate)(3, 500, &mut again);
            assert_eq!(v, again, "{}", f.name);
            let mut other = Vec::new();
            (f.generate)(4, 500, &mut other);
            assert_ne!(v, other, "{}", f.name);
        }
    }

    #[test]
    fn held_out_families_are_disjoint_from_training() {
        for f in HELD_OUT {
            assert!(TRAIN.iter().all(|t| t.name != f.name));
        }
        for w in WORDS_B {
            assert!(!WORDS_A.contains(w), "{w}");
        }
    }

    #[test]
    fn banjori_walk() {
        let mut v = Vec::new();
        banjori(0, 3, &mut v);
        // Only the first four letters move.
        for n in &v {
            assert!(n.ends_with("estnessbiophysicalohax.com"), "{n}");
        }
        assert_ne!(v[0], v[1]);
    }
}
