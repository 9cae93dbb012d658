//! Reader users: names with argon2id password hashes (passwords are low-entropy).

use super::{Store, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, OptionalExtension};

impl Store {
    /// Creates or replaces reader `name` with an argon2id hash of `password`.
    pub fn set_user(&self, name: &str, password: &str) -> Result<(), StoreError> {
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| StoreError::Random)?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Hash(e.to_string()))?;
        let phc = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| StoreError::Hash(e.to_string()))?
            .to_string();
        self.conn.execute(
            "INSERT INTO users (name, phc, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET phc = excluded.phc",
            params![name, phc, crate::clock::now_ms()],
        )?;
        Ok(())
    }

    /// The stored argon2 PHC string of `name`, for verification off the store's thread.
    pub fn user_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT phc FROM users WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether `password` matches `name`'s stored hash. Unknown users are simply `false`.
    pub fn verify_user(&self, name: &str, password: &str) -> Result<bool, StoreError> {
        Ok(self
            .user_hash(name)?
            .is_some_and(|phc| verify_password(&phc, password)))
    }
}

/// Constant-time argon2 verification of `password` against a PHC string.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}
