//! Policy bundles: a directory of files (intel lists, rules, model files, `policy.toml`) with a
//! manifest (`bundle.toml`: version, target groups, every file's size and SHA-256) and an
//! ed25519 signature of the manifest's exact bytes (`bundle.sig`).
//!
//! The operator signs a directory with `palisade manager sign`; the manager only relays bundles
//! and is not trusted with their content: every node verifies the signature with the operator's
//! public key, then every file against the manifest, before anything is written or applied.
//! The wire form is length-prefixed and read with caps ([`Limits`]), so a hostile peer cannot
//! make a node allocate more than the cap.

use std::path::{Path, PathBuf};

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's file name inside a bundle directory.
pub const MANIFEST: &str = "bundle.toml";
/// The signature's file name (hex of the 64-byte ed25519 signature of the manifest's bytes).
pub const SIGNATURE: &str = "bundle.sig";
/// The policy file inside a bundle (the settings file's format, paths relative to the bundle).
pub const POLICY: &str = "policy.toml";

/// Caps on what a bundle may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of all files.
    pub max_bytes: u64,
    /// Number of files.
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 256 << 20,
            max_files: 4096,
        }
    }
}

/// `bundle.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Monotonic version; a node never applies a version lower than the one it runs.
    pub version: u64,
    /// When it was signed (RFC 3339, informational).
    #[serde(default)]
    pub created: String,
    /// Groups this bundle targets first (staged rollout); empty: every node.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Every file of the bundle.
    #[serde(default, rename = "file")]
    pub files: Vec<FileEntry>,
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// A bundle as read from a directory or received: the manifest's bytes, the signature and the
/// files, none of it trusted until [`Bundle::verify`] says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The manifest's exact bytes (what is signed).
    pub manifest: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
    /// (relative path, contents).
    pub files: Vec<(String, Vec<u8>)>,
}

/// A path is acceptable inside a bundle: relative, no `..`, no empty or hidden components,
/// a conservative character set, and not the manifest or signature.
pub fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p != MANIFEST
        && p != SIGNATURE
        && p.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        })
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    crate::app::tls::hex_lower(b, &mut s);
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// Parses manifest text; errors name `name` and the line.
pub fn parse_manifest(name: &str, text: &[u8]) -> Result<Manifest, String> {
    let text = std::str::from_utf8(text).map_err(|_| format!("{name}: not UTF-8"))?;
    let m: Manifest = toml::from_str(text).map_err(|e| crate::settings::locate(name, text, &e))?;
    for f in &m.files {
        if !safe_path(&f.path) {
            return Err(format!(
                "{name}: file `{}`: not a safe relative path",
                f.path
            ));
        }
        if f.sha256.len() != 64 || unhex(&f.sha256).is_none() {
            return Err(format!(
                "{name}: file `{}`: sha256 is not 64 hex digits",
                f.path
            ));
        }
    }
    let mut paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    if let Some(w) = paths.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("{name}: file `{}` listed twice", w[0]));
    }
    Ok(m)
}

/// The operator's signing key (PKCS#8 ed25519, PEM; `openssl genpkey -algorithm ed25519` keys
/// work too).
#[derive(Debug)]
pub struct SigningKey(Ed25519KeyPair);

/// The public half, as nodes are given it (PEM `PUBLIC KEY`, SubjectPublicKeyInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

/// The DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn pem(label: &str, der: &[u8]) -> String {
    let mut b64 = String::new();
    crate::eve::base64_lite::encode_into(der, &mut b64);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

impl SigningKey {
    /// A new random key: (private PEM, public PEM).
    pub fn generate() -> Result<(String, String), String> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "key generation failed")?;
        let kp = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| "key generation failed")?;
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(kp.public_key().as_ref());
        Ok((pem("PRIVATE KEY", doc.as_ref()), pem("PUBLIC KEY", &spki)))
    }

    /// Reads a PEM private key file.
    pub fn load(path: &Path) -> Result<SigningKey, String> {
        use rustls_pki_types::pem::PemObject;
        let d = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(d.secret_pkcs8_der())
            .map(SigningKey)
            .map_err(|e| format!("{}: not an ed25519 private key ({e})", path.display()))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.0.public_key().as_ref());
        PublicKey(k)
    }
}

impl PublicKey {
    /// Reads a PEM public key file.
    pub fn load(path: &Path) -> Result<PublicKey, String> {
        use rustls_pki_types::pem::PemObject;
        let d = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_file(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let b: &[u8] = d.as_ref();
        match b.strip_prefix(&SPKI_PREFIX[..]) {
            Some(k) if k.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(k);
                Ok(PublicKey(key))
            }
            _ => Err(format!("{}: not an ed25519 public key", path.display())),
        }
    }

    /// Hex of the key (how logs and status name it).
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.0)[..16].to_string()
    }
}

/// Reads every regular file under `dir` (relative paths, sorted), except the manifest, the
/// signature and hidden entries.
fn walk(dir: &Path, limits: Limits) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for ent in rd {
            let ent = ent.map_err(|e| format!("{}: {e}", d.display()))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let ft = ent.file_type().map_err(|e| format!("{}: {e}", rel))?;
            if ft.is_dir() {
                stack.push((ent.path(), rel));
            } else if ft.is_file() && rel != MANIFEST && rel != SIGNATURE {
                if !safe_path(&rel) {
                    return Err(format!(
                        "{}: `{rel}`: name not allowed in a bundle",
                        dir.display()
                    ));
                }
                out.push((rel, ent.path()));
            }
        }
        if out.len() > limits.max_files {
            return Err(format!(
                "{}: more than {} files",
                dir.display(),
                limits.max_files
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads one file of a bundle, adding its size to `total`; over the bundle's byte cap is an error
/// naming the directory.
fn read_capped(
    path: &Path,
    dir: &Path,
    total: &mut u64,
    limits: Limits,
) -> Result<Vec<u8>, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    *total += b.len() as u64;
    if *total > limits.max_bytes {
        return Err(format!(
            "{}: over {} bytes",
            dir.display(),
            limits.max_bytes
        ));
    }
    Ok(b)
}

/// Signs a directory: writes `bundle.toml` listing every file and `bundle.sig`. Returns the
/// manifest.
pub fn sign_dir(
    dir: &Path,
    key: &SigningKey,
    version: u64,
    groups: &[String],
    created: &str,
) -> Result<Manifest, String> {
    let limits = Limits::default();
    let mut files = Vec::new();
    let mut total = 0u64;
    for (rel, path) in walk(dir, limits)? {
        let b = read_capped(&path, dir, &mut total, limits)?;
        files.push(FileEntry {
            path: rel,
            size: b.len() as u64,
            sha256: sha256_hex(&b),
        });
    }
    let m = Manifest {
        version,
        created: created.to_string(),
        groups: groups.to_vec(),
        files,
    };
    let text = toml::to_string(&m).map_err(|e| e.to_string())?;
    let sig = key.0.sign(text.as_bytes());
    std::fs::write(dir.join(MANIFEST), &text).map_err(|e| format!("{MANIFEST}: {e}"))?;
    std::fs::write(dir.join(SIGNATURE), format!("{}\n", hex(sig.as_ref())))
        .map_err(|e| format!("{SIGNATURE}: {e}"))?;
    Ok(m)
}

/// Reads a little-endian-free, length-prefixed field with a cap.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("bundle truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl Bundle {
    /// Reads a signed directory (nothing verified).
    pub fn read_dir(dir: &Path, limits: Limits) -> Result<Bundle, String> {
        let mpath = dir.join(MANIFEST);
        let manifest = std::fs::read(&mpath).map_err(|e| format!("{}: {e}", mpath.display()))?;
        let spath = dir.join(SIGNATURE);
        let sig_text =
            std::fs::read_to_string(&spath).map_err(|e| format!("{}: {e}", spath.display()))?;
        let signature = unhex(&sig_text)
            .filter(|s| s.len() == 64)
            .ok_or_else(|| format!("{}: not a hex ed25519 signature", spath.display()))?;
        let m = parse_manifest(&mpath.display().to_string(), &manifest)?;
        if m.files.len() > limits.max_files {
            return Err(format!(
                "{}: more than {} files",
                mpath.display(),
                limits.max_files
            ));
        }
        let mut files = Vec::new();
        let mut total = 0u64;
        for f in &m.files {
            let b = read_capped(&dir.join(&f.path), dir, &mut total, limits)?;
            files.push((f.path.clone(), b));
        }
        Ok(Bundle {
            manifest,
            signature,
            files,
        })
    }

    /// The wire form: manifest, signature, then each file, all length-prefixed (u32, big-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        let mut put = |b: &[u8]| {
            o.extend_from_slice(&(b.len() as u32).to_be_bytes());
            o.extend_from_slice(b);
        };
        put(&self.manifest);
        put(&self.signature);
        put(&(self.files.len() as u32).to_be_bytes());
        for (p, b) in &self.files {
            put(p.as_bytes());
            put(b);
        }
        o
    }

    /// Reads the wire form within the limits.
    pub fn decode(b: &[u8], limits: Limits) -> Result<Bundle, String> {
        let mut r = Reader(b);
        let field = |r: &mut Reader<'_>, cap: u64| -> Result<Vec<u8>, String> {
            let n = r.u32()? as u64;
            if n > cap {
                return Err(format!("bundle field of {n} bytes over its cap"));
            }
            Ok(r.take(n as usize)?.to_vec())
        };
        let manifest = field(&mut r, 16 << 20)?;
        let signature = field(&mut r, 64)?;
        let count = field(&mut r, 4)?;
        let count = match count[..] {
            [a, b, c, d] => u32::from_be_bytes([a, b, c, d]) as usize,
            _ => return Err("bundle file count malformed".into()),
        };
        if count > limits.max_files {
            return Err(format!(
                "bundle of {count} files over the cap of {}",
                limits.max_files
            ));
        }
        let mut files = Vec::with_capacity(count);
        let mut total = 0u64;
        for _ in 0..count {
            let p = String::from_utf8(field(&mut r, 255)?)
                .map_err(|_| "bundle file name not UTF-8".to_string())?;
            let body = field(&mut r, limits.max_bytes - total)?;
            total += body.len() as u64;
            files.push((p, body));
        }
        if !r.0.is_empty() {
            return Err("bundle has trailing bytes".into());
        }
        Ok(Bundle {
            manifest,
            signature,
            files,
        })
    }

    /// SHA-256 of the wire form: what manager and node compare to know they hold the same bytes.
    pub fn digest(&self) -> String {
        sha256_hex(&self.encode())
    }

    /// The manifest, parsed but not verified (what the relaying manager reads for version and
    /// groups).
    pub fn manifest_unverified(&self) -> Result<Manifest, String> {
        parse_manifest(MANIFEST, &self.manifest)
    }

    /// Checks the signature against `key`, then every file against the manifest (exactly the
    /// files it lists, each with its size and hash). Returns the manifest.
    pub fn verify(&self, key: &PublicKey) -> Result<Manifest, String> {
        UnparsedPublicKey::new(&ED25519, &key.0)
            .verify(&self.manifest, &self.signature)
            .map_err(|_| {
                format!(
                    "signature does not verify with key {} (unsigned, altered, or signed by another key)",
                    key.fingerprint()
                )
            })?;
        let m = parse_manifest(MANIFEST, &self.manifest)?;
        if m.files.len() != self.files.len() {
            return Err(format!(
                "manifest lists {} files, bundle carries {}",
                m.files.len(),
                self.files.len()
            ));
        }
        for f in &m.files {
            let Some((_, body)) = self.files.iter().find(|(p, _)| *p == f.path) else {
                return Err(format!("file `{}` listed but missing", f.path));
            };
            if body.len() as u64 != f.size || sha256_hex(body) != f.sha256 {
                return Err(format!(
                    "file `{}` does not match its manifest hash",
                    f.path
                ));
            }
        }
        Ok(m)
    }

    /// Writes the bundle into `dir` (created; must not exist), through a temporary sibling
    /// renamed into place, so a crash leaves either nothing or the whole bundle.
    pub fn write_to(&self, dir: &Path) -> Result<(), String> {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        let io = |e: std::io::Error, p: &Path| format!("{}: {e}", p.display());
        std::fs::create_dir_all(&tmp).map_err(|e| io(e, &tmp))?;
        for (p, b) in &self.files {
            if !safe_path(p) {
                return Err(format!("file `{p}`: not a safe relative path"));
            }
            let path = tmp.join(p);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(e, parent))?;
            }
            std::fs::write(&path, b).map_err(|e| io(e, &path))?;
        }
        std::fs::write(tmp.join(MANIFEST), &self.manifest).map_err(|e| io(e, &tmp))?;
        std::fs::write(tmp.join(SIGNATURE), format!("{}\n", hex(&self.signature)))
            .map_err(|e| io(e, &tmp))?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&tmp, dir).map_err(|e| io(e, dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path) -> (SigningKey, PublicKey) {
        let (private, public) = SigningKey::generate().unwrap();
        std::fs::write(dir.join("k.pem"), private).unwrap();
        std::fs::write(dir.join("k.pub"), public).unwrap();
        (
            SigningKey::load(&dir.join("k.pem")).unwrap(),
            PublicKey::load(&dir.join("k.pub")).unwrap(),
        )
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("palisade-bundle-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn signed_bundle_verifies_and_any_change_is_refused() {
        let d = tempdir("sign");
        let (sk, pk) = keys(&d);
        let b = d.join("b");
        std::fs::create_dir_all(b.join("rules")).unwrap();
        std::fs::write(b.join("block.txt"), "evil.example\n").unwrap();
        std::fs::write(
            b.join("rules/local.rules"),
            "alert ip any any -> any any (sid:1;)\n",
        )
        .unwrap();
        let m = sign_dir(&b, &sk, 7, &["canary".into()], "2026-11-30T00:00:00Z").unwrap();
        assert_eq!(m.version, 7);
        assert_eq!(m.files.len(), 2);
        let bundle = Bundle::read_dir(&b, Limits::default()).unwrap();
        let wire = bundle.encode();
        let back = Bundle::decode(&wire, Limits::default()).unwrap();
        assert_eq!(back, bundle);
        assert_eq!(back.verify(&pk).unwrap(), m);

        // A file changed after signing.
        let mut t = back.clone();
        t.files[0].1.extend_from_slice(b"more.example\n");
        assert!(t.verify(&pk).unwrap_err().contains("does not match"));
        // A file added or removed.
        let mut t = back.clone();
        t.files.push(("extra.txt".into(), b"x".to_vec()));
        assert!(t.verify(&pk).unwrap_err().contains("lists 2 files"));
        // The manifest edited (its version raised).
        let mut t = back.clone();
        t.manifest = String::from_utf8(t.manifest)
            .unwrap()
            .replace("version = 7", "version = 8")
            .into_bytes();
        assert!(t.verify(&pk).unwrap_err().contains("signature"));
        // Another operator's key.
        let (_, other) = keys(&tempdir("other"));
        assert!(back.verify(&other).unwrap_err().contains("signature"));
        // Unsigned.
        let mut t = back.clone();
        t.signature = vec![0; 64];
        assert!(t.verify(&pk).is_err());

        // Written out and read back, byte for byte.
        let out = d.join("out");
        back.write_to(&out).unwrap();
        assert_eq!(Bundle::read_dir(&out, Limits::default()).unwrap(), bundle);
    }

    #[test]
    fn hostile_wire_forms_are_refused_within_caps() {
        let small = Limits {
            max_bytes: 100,
            max_files: 2,
        };
        let b = Bundle {
            manifest: b"version = 1\n".to_vec(),
            signature: vec![1; 64],
            files: vec![("a".into(), vec![0; 60]), ("b".into(), vec![0; 60])],
        };
        let wire = b.encode();
        assert!(Bundle::decode(&wire, small).unwrap_err().contains("cap"));
        for n in 0..wire.len() {
            assert!(Bundle::decode(&wire[..n], Limits::default()).is_err());
        }
        let mut huge = wire.clone();
        huge[0] = 0xff;
        assert!(Bundle::decode(&huge, Limits::default()).is_err());
        for p in [
            "../x",
            "/etc/passwd",
            "a/../b",
            ".hidden",
            "a//b",
            "bundle.sig",
            "",
        ] {
            assert!(!safe_path(p), "{p}");
        }
        assert!(safe_path("rules/et-open.rules"));
        let e = parse_manifest(
            "m.toml",
            b"version = 1\n[[file]]\npath = \"../x\"\nsize = 1\nsha256 = \"00\"\n",
        )
        .unwrap_err();
        assert!(e.contains("not a safe relative path"), "{e}");
        let e = parse_manifest("m.toml", b"version = 1\nbogus = 2\n").unwrap_err();
        assert!(e.starts_with("m.toml:2:1: unknown field"), "{e}");
    }
}
