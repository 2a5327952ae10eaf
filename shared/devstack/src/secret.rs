//! The local JWT signing secret: `ATLAS_JWT_SECRET` if set, otherwise a
//! random one kept in the data directory so `atlas token` and `atlas dev`
//! agree across runs.

use std::io::Write;
use std::path::Path;

pub fn load_or_create(data_dir: &Path) -> std::io::Result<Vec<u8>> {
    if let Ok(s) = std::env::var("ATLAS_JWT_SECRET")
        && !s.is_empty()
    {
        return Ok(s.into_bytes());
    }
    let path = data_dir.join("jwt-secret");
    match std::fs::read(&path) {
        Ok(s) if s.len() >= 32 => return Ok(s),
        Ok(_) | Err(_) => {}
    }
    std::fs::create_dir_all(data_dir)?;
    // 256 bits from the operating system's generator: fastrand is
    // predictable by design and must never make a signing key.
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| std::io::Error::other("no OS randomness"))?;
    let secret: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(&path)?.write_all(secret.as_bytes())?;
    Ok(secret.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_secret_is_reused() {
        let dir = std::env::temp_dir().join(format!("atlas-secret-{}", fastrand::u64(..)));
        let a = load_or_create(&dir).unwrap();
        let b = load_or_create(&dir).unwrap();
        assert_eq!(a, b);
        assert!(a.len() >= 32);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_secret_does_not_come_from_the_seeded_generator() {
        let fresh = || {
            // Any secret drawn from fastrand would repeat after this.
            fastrand::seed(7);
            let dir = std::env::temp_dir().join(format!("atlas-secret-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let s = load_or_create(&dir).unwrap();
            std::fs::remove_dir_all(dir).unwrap();
            s
        };
        let (a, b) = (fresh(), fresh());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
