//! Bearer-token authentication. Tokens are configured only as SHA-256 hashes bound to a client id;
//! a presented token is hashed and compared in constant time against every configured hash.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone, Default)]
pub struct Authenticator {
    clients: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.clients.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Authenticator")
            .field("clients", &ids)
            .finish()
    }
}

/// Hex SHA-256 of a token: what goes into `API_TOKENS`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Authenticator {
    /// Parses `client_id:sha256hex[,client_id:sha256hex...]`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut clients = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (client, hash) = entry
                .split_once(':')
                .ok_or_else(|| "API_TOKENS entries look like client_id:sha256hex".to_string())?;
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hash, &mut bytes).map_err(|_| {
                format!("API_TOKENS: the hash for client {client:?} is not 64 hex digits")
            })?;
            if client.is_empty() {
                return Err("API_TOKENS: empty client id".into());
            }
            clients.push((client.to_string(), bytes));
        }
        Ok(Self { clients })
    }

    pub fn with_client(mut self, client_id: &str, token: &str) -> Self {
        self.clients.push((
            client_id.to_string(),
            Sha256::digest(token.as_bytes()).into(),
        ));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client a token belongs to. Every configured hash is compared, so timing does not reveal
    /// which entry (if any) matched.
    pub fn authenticate(&self, token: &str) -> Option<&str> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (client, hash) in &self.clients {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(client.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_clients() {
        let spec = format!(
            "alpha:{},beta:{}",
            hash_token("t-alpha"),
            hash_token("t-beta")
        );
        let auth = Authenticator::parse(&spec).unwrap();
        assert_eq!(auth.authenticate("t-alpha"), Some("alpha"));
        assert_eq!(auth.authenticate("t-beta"), Some("beta"));
        assert_eq!(auth.authenticate("t-gamma"), None);
        assert_eq!(auth.authenticate(""), None);
        assert!(!format!("{auth:?}").contains(&hash_token("t-alpha")));
    }

    #[test]
    fn malformed_specs_are_refused() {
        assert!(Authenticator::parse("alpha").is_err());
        assert!(Authenticator::parse("alpha:zz").is_err());
        assert!(Authenticator::parse(&format!(":{}", hash_token("x"))).is_err());
        assert!(Authenticator::parse("").unwrap().is_empty());
    }
}
