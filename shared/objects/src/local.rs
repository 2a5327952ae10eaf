use std::path::PathBuf;

use crate::{ObjectError, ObjectStore, check_key};

/// A directory standing in for a bucket (`atlas dev`).
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn error(&self, e: std::io::Error) -> ObjectError {
        ObjectError::Backend {
            store: self.root.display().to_string(),
            message: e.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalDir {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        check_key(key)?;
        let path = self.root.join(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| self.error(e))?;
        }
        // Write aside and rename, so a reader never sees a partial object.
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(|e| self.error(e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| self.error(e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        check_key(key)?;
        match tokio::fs::read(self.root.join(key)).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_missing() {
        let dir = std::env::temp_dir().join(format!("atlas-objects-{}", std::process::id()));
        let store = LocalDir::new(dir.clone());
        assert_eq!(store.get("a/b.bin").await.unwrap(), None);
        store.put("a/b.bin", b"one".to_vec()).await.unwrap();
        store.put("a/b.bin", b"two".to_vec()).await.unwrap();
        assert_eq!(store.get("a/b.bin").await.unwrap(), Some(b"two".to_vec()));
        assert!(matches!(
            store.put("../x", vec![]).await,
            Err(ObjectError::BadKey(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
