//! Stripe-style signatures: `Ledger-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<raw body>")>`, with one more `v1=` per extra secret (the previous one, during a rotation's
//! overlap window). A receiver recomputes the HMAC over the raw body with its secret, compares in
//! constant time with any `v1`, and refuses a `t` too far from its clock (replays).

use aws_lc_rs::hmac;
use rand::RngCore;

/// Every secret starts with this, so a leaked one is easy to recognise (and to scan for).
pub const SECRET_PREFIX: &str = "whsec_";

/// A new endpoint secret: `whsec_` and 32 random bytes in hex. Shown to the client once.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", hex::encode(bytes))
}

fn key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

fn signed_payload(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut payload = format!("{timestamp}.").into_bytes();
    payload.extend_from_slice(body);
    payload
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(hmac::sign(&key(secret), &signed_payload(timestamp, body)).as_ref())
}

/// The `Ledger-Signature` header value: one `v1` per secret, the current one first.
pub fn header(timestamp: i64, body: &[u8], secrets: &[&str]) -> String {
    let mut value = format!("t={timestamp}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&sign(secret, timestamp, body));
    }
    value
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is malformed (expected t=<unix seconds>,v1=<hex>)")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    TimestampOutsideTolerance,
    #[error("no v1 signature matches any of the secrets")]
    NoMatch,
}

/// Checks a `Ledger-Signature` header against the raw body: its `t` within `tolerance_secs` of
/// `now_unix`, and one of its `v1` values the HMAC under one of `secrets`. Constant-time compare.
pub fn verify(
    header: &str,
    body: &[u8],
    secrets: &[&str],
    tolerance_secs: i64,
    now_unix: i64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(VerifyError::Malformed)?;
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| VerifyError::Malformed)?),
            "v1" => signatures.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            _ => {} // other schemes, for forward compatibility
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if now_unix.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return Err(VerifyError::TimestampOutsideTolerance);
    }
    let payload = signed_payload(timestamp, body);
    let matched = secrets.iter().any(|secret| {
        let key = key(secret);
        signatures
            .iter()
            .any(|sig| hmac::verify(&key, &payload, sig).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_vector() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed independently with Python's hmac.
        assert_eq!(
            sign("whsec_test", 1_700_000_000, b"{}"),
            "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn signatures_verify_with_either_secret_and_refuse_tampering() {
        let body = br#"{"id":"evt_1"}"#;
        let (old, new) = (generate_secret(), generate_secret());
        assert!(new.starts_with(SECRET_PREFIX) && new.len() == SECRET_PREFIX.len() + 64);
        assert_ne!(old, new);
        let h = header(1000, body, &[&new, &old]);
        assert_eq!(h.matches("v1=").count(), 2);
        assert_eq!(verify(&h, body, &[&new], 300, 1000), Ok(()));
        assert_eq!(verify(&h, body, &[&old], 300, 1200), Ok(()));
        assert_eq!(
            verify(&h, b"{\"id\":\"evt_2\"}", &[&new], 300, 1000),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&h, body, &[&generate_secret()], 300, 1000),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&h, body, &[&new], 300, 1301),
            Err(VerifyError::TimestampOutsideTolerance)
        );
        assert_eq!(
            verify(&h, body, &[&new], 300, 699),
            Err(VerifyError::TimestampOutsideTolerance)
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "garbage"] {
            assert_eq!(
                verify(bad, body, &[&new], 300, 1),
                Err(VerifyError::Malformed),
                "{bad}"
            );
        }
        // A changed timestamp breaks the signature even inside the tolerance.
        let forged = h.replacen("t=1000", "t=1001", 1);
        assert_eq!(
            verify(&forged, body, &[&new], 300, 1000),
            Err(VerifyError::NoMatch)
        );
    }
}
