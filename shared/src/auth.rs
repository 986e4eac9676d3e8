//! Bearer-token authentication. Tokens are configured only as SHA-256 hashes bound to a client id
//! and a role; a presented token is hashed and compared in constant time against every configured
//! hash.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do. Every token reads and writes its own client's data; an operator token may
/// also call the operator routes (`/queue/stats`, `/cache/stats`) and read the ledger-wide
/// reconciliation runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Client,
    Operator,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client" => Some(Self::Client),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Operator => "operator",
        }
    }
}

/// The owner of the ledger's own findings (reconciliation discrepancies no client owns). No token
/// may be bound to it.
pub const SYSTEM_CLIENT: &str = "system";

#[derive(Clone, Default)]
pub struct Authenticator {
    clients: Vec<(String, Role, [u8; 32])>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self
            .clients
            .iter()
            .map(|(id, role, _)| format!("{id} ({})", role.as_str()))
            .collect();
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
    /// Parses `client_id:sha256hex[:role][,client_id:sha256hex[:role]...]`; the role is `client`
    /// (the default) or `operator`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut clients = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = entry.splitn(3, ':');
            let (Some(client), Some(hash)) = (parts.next(), parts.next()) else {
                return Err("API_TOKENS entries look like client_id:sha256hex[:role]".into());
            };
            let role = match parts.next() {
                None => Role::Client,
                Some(r) => Role::parse(r).ok_or_else(|| {
                    format!(
                        "API_TOKENS: unknown role {r:?} for client {client:?} (the role is client or operator)"
                    )
                })?,
            };
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hash, &mut bytes).map_err(|_| {
                format!("API_TOKENS: the hash for client {client:?} is not 64 hex digits")
            })?;
            if client.is_empty() {
                return Err("API_TOKENS: empty client id".into());
            }
            if client == SYSTEM_CLIENT {
                return Err(format!(
                    "API_TOKENS: the client id {SYSTEM_CLIENT:?} is reserved for the ledger's own findings"
                ));
            }
            clients.push((client.to_string(), role, bytes));
        }
        Ok(Self { clients })
    }

    /// Adds a client-role token (tests and devstack).
    pub fn with_client(self, client_id: &str, token: &str) -> Self {
        self.with_role(client_id, token, Role::Client)
    }

    /// Adds a token with the given role (tests and devstack).
    pub fn with_role(mut self, client_id: &str, token: &str, role: Role) -> Self {
        self.clients.push((
            client_id.to_string(),
            role,
            Sha256::digest(token.as_bytes()).into(),
        ));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client a token belongs to and its role. Every configured hash is compared, so timing
    /// does not reveal which entry (if any) matched.
    pub fn authenticate(&self, token: &str) -> Option<(&str, Role)> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (client, role, hash) in &self.clients {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some((client.as_str(), *role));
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
        assert_eq!(auth.authenticate("t-alpha"), Some(("alpha", Role::Client)));
        assert_eq!(auth.authenticate("t-beta"), Some(("beta", Role::Client)));
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

    #[test]
    fn roles_are_client_by_default_or_named() {
        let spec = format!(
            "alpha:{},ops:{}:operator,beta:{}:client",
            hash_token("t-alpha"),
            hash_token("t-ops"),
            hash_token("t-beta")
        );
        let auth = Authenticator::parse(&spec).unwrap();
        assert_eq!(auth.authenticate("t-alpha"), Some(("alpha", Role::Client)));
        assert_eq!(auth.authenticate("t-ops"), Some(("ops", Role::Operator)));
        assert_eq!(auth.authenticate("t-beta"), Some(("beta", Role::Client)));
        assert!(format!("{auth:?}").contains("ops (operator)"));
    }

    #[test]
    fn unknown_roles_and_the_system_client_are_refused() {
        let err = Authenticator::parse(&format!("ops:{}:admin", hash_token("x"))).unwrap_err();
        assert!(
            err.contains("unknown role \"admin\"") && err.contains("operator"),
            "{err}"
        );
        assert!(Authenticator::parse(&format!("ops:{}:", hash_token("x"))).is_err());
        assert!(Authenticator::parse(&format!("ops:{}:Operator", hash_token("x"))).is_err());
        let err = Authenticator::parse(&format!("system:{}", hash_token("x"))).unwrap_err();
        assert!(err.contains("reserved"), "{err}");
    }
}
