//! Account locks taken before any row lock, so that a transaction's id (which PostgreSQL assigns
//! at its first row lock, and which orders the outbox) is assigned only once the transaction holds
//! every account it writes. Two transactions that share an account then have ids in the order they
//! held it, and the events of one account are delivered in posting order.
//!
//! Every writer of an account's balance, pending debits or monitors takes these first: posting (all
//! the batch's accounts, waiting), the hold sweep (the accounts it can have now, never waiting), a
//! monitor's creation and disabling (its account, waiting). Transaction-level advisory locks: they
//! are released at commit or rollback, and taking one assigns no transaction id.

use sha2::{Digest, Sha256};

/// The advisory lock key of an account: the first 8 bytes of the SHA-256 of its id (a collision
/// only makes two accounts share a lock).
pub fn key(account_id: &str) -> i64 {
    let digest = Sha256::digest(account_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The keys of `account_ids`, sorted and without repeats: every waiting locker takes them in this
/// order, so two of them never wait on each other in a cycle.
pub fn keys<'a>(account_ids: impl IntoIterator<Item = &'a str>) -> Vec<i64> {
    let mut keys: Vec<i64> = account_ids.into_iter().map(key).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Waits for the locks of `$1` (sorted keys), in array order (a function scan keeps it).
pub(super) const LOCK: &str =
    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k";

/// Takes the locks of `$1` (account ids) that are free now, and returns those accounts.
pub(super) const TRY_LOCK: &str = "SELECT u.id FROM unnest($1::text[], $2::bigint[]) AS u(id, k)
     WHERE pg_try_advisory_xact_lock(u.k)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_sorted_and_unique() {
        assert_eq!(key("alice"), key("alice"));
        assert_ne!(key("alice"), key("bob"));
        let k = keys(["bob", "alice", "bob"]);
        assert_eq!(k.len(), 2);
        assert!(k[0] < k[1]);
    }
}
