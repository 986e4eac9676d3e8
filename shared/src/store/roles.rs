//! Database roles (DESIGN.md section 14). The migrator connects as the schema owner; the api,
//! processor and reconciler connect as a login role that is a member of [`APP_GROUP`], which
//! migration V4 creates (NOLOGIN) and grants exactly what their SQL needs.
//!
//! The login itself is created here, not in a migration, because it carries a password: in AWS the
//! migrator reads it from `APP_DATABASE_SECRET_ARN`; locally devstack and the test kit create a
//! password-less `ledger_app_local` (trust authentication).

use std::time::Duration;

use anyhow::{Context, bail};
use tokio_postgres::error::SqlState;

use super::PgPool;

/// The NOLOGIN role holding the functions' privileges (created by migration V4).
pub const APP_GROUP: &str = "ledger_app";
/// The login devstack and the tests use locally (trust authentication, no password).
pub const LOCAL_APP_LOGIN: &str = "ledger_app_local";

/// The functions' login from a Secrets Manager secret (JSON `username` and `password`, the format
/// of `DATABASE_SECRET_ARN`; other keys are ignored).
#[derive(Clone, PartialEq, Eq)]
pub struct AppLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for AppLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppLogin")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl AppLogin {
    pub fn from_secret_json(json: &str) -> anyhow::Result<Self> {
        #[derive(serde::Deserialize)]
        struct Secret {
            username: String,
            password: String,
        }
        let s: Secret = serde_json::from_str(json)
            .context("the app database secret is not JSON with username and password")?;
        anyhow::ensure!(
            !s.password.is_empty(),
            "the app database secret has an empty password"
        );
        Ok(Self {
            username: s.username,
            password: s.password,
        })
    }

    /// Reads the secret (one Secrets Manager call).
    pub async fn from_secret(arn: &str) -> anyhow::Result<Self> {
        let sdk = crate::clients::sdk_config().await;
        let value = aws_sdk_secretsmanager::Client::new(&sdk)
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
            })
            .context("reading APP_DATABASE_SECRET_ARN")?;
        Self::from_secret_json(
            value
                .secret_string()
                .context("the app database secret has no string value")?,
        )
    }
}

/// A login name we are willing to create: lower case, digits and `_`, not starting with `pg_`.
fn valid_login(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
        && !name.starts_with("pg_")
        && name != APP_GROUP
}

/// Creates login role `login` (or makes an existing one able to log in), sets its password when
/// one is given, and makes it a member of [`APP_GROUP`]. Idempotent; safe to run concurrently from
/// several databases of one cluster (roles are cluster-wide). Needs CREATEROLE and ADMIN on
/// `ledger_app` (the migrating role has both) and migration V4 applied.
///
/// The password is sent as a SCRAM-SHA-256 verifier computed here, so it never reaches the server
/// (or its statement log) in clear. Refuses a role with superuser, CREATEROLE, CREATEDB,
/// REPLICATION or BYPASSRLS, or the connected role itself: the functions must not run as those.
pub async fn ensure_app_login(
    pool: &PgPool,
    login: &str,
    password: Option<&str>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        valid_login(login),
        "invalid login role name {login:?} (lower case letters, digits and _, at most 63)"
    );
    let verifier = password.map(|p| postgres_protocol::password::scram_sha_256(p.as_bytes()));
    let mut conn = pool
        .get()
        .await
        .context("connecting to create the app login")?;
    let mut attempt = 0;
    loop {
        match ensure_once(&mut conn, login, verifier.as_deref()).await {
            Ok(()) => return Ok(()),
            // Another runner created or changed the same role at the same moment: look again.
            Err(e) if attempt < 8 && concurrent_change(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("ensuring login role {login}")),
        }
    }
}

async fn ensure_once(
    conn: &mut deadpool_postgres::Object,
    login: &str,
    verifier: Option<&str>,
) -> anyhow::Result<()> {
    const LOCK: i64 = 0x6c65_6467_6572_726f; // "ledgerro"
    let tx = conn.transaction().await?;
    // Serializes runners connected to the same database; the retry covers the others.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    if tx
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&APP_GROUP])
        .await?
        .is_none()
    {
        bail!("role {APP_GROUP} does not exist: apply the migrations first");
    }
    let row = tx
        .query_opt(
            "SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
                    OR r.rolbypassrls OR r.rolname = current_user,
                    r.rolcanlogin,
                    EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                            WHERE m.member = r.oid AND g.rolname = $2)
             FROM pg_roles r WHERE r.rolname = $1",
            &[&login, &APP_GROUP],
        )
        .await?;
    let ident = format!("\"{}\"", login.replace('"', "\"\""));
    let password = verifier
        .map(|v| format!(" PASSWORD '{}'", v.replace('\'', "''")))
        .unwrap_or_default();
    let member = match row {
        None => {
            tx.batch_execute(&format!("CREATE ROLE {ident} WITH LOGIN{password}"))
                .await?;
            false
        }
        Some(r) => {
            if r.get::<_, bool>(0) {
                bail!(
                    "role {login} is privileged (superuser, CREATEROLE, CREATEDB, REPLICATION, \
                     BYPASSRLS or the migrating role itself); the functions need an ordinary login"
                );
            }
            if !r.get::<_, bool>(1) || verifier.is_some() {
                tx.batch_execute(&format!("ALTER ROLE {ident} WITH LOGIN{password}"))
                    .await?;
            }
            r.get(2)
        }
    };
    if !member {
        tx.batch_execute(&format!("GRANT {APP_GROUP} TO {ident}"))
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Errors two runners get when they create or alter the same role at once.
fn concurrent_change(e: &anyhow::Error) -> bool {
    let Some(db) = e
        .chain()
        .find_map(|c| c.downcast_ref::<tokio_postgres::Error>())
        .and_then(|e| e.as_db_error())
    else {
        return false;
    };
    let code = db.code();
    code == &SqlState::DUPLICATE_OBJECT
        || code == &SqlState::UNIQUE_VIOLATION
        || code == &SqlState::T_R_SERIALIZATION_FAILURE
        || code == &SqlState::T_R_DEADLOCK_DETECTED
        || (code == &SqlState::INTERNAL_ERROR && db.message().contains("concurrently"))
}

/// The user and password a connection string (URL or key=value) names.
pub fn url_login(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let config: tokio_postgres::Config = url.parse().context("parsing the database URL")?;
    let user = config
        .get_user()
        .context("the database URL names no user")?
        .to_string();
    let password = config
        .get_password()
        .map(|p| String::from_utf8(p.to_vec()))
        .transpose()
        .context("the database password is not UTF-8")?;
    Ok((user, password))
}

/// `url` (a `postgres://` URL) with its user and password replaced.
pub fn url_with_login(url: &str, user: &str, password: Option<&str>) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .context("the database URL must be a postgres:// URL")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_start = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
    // Everything but RFC 3986's unreserved characters is percent-encoded.
    const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let enc = |v: &str| percent_encoding::utf8_percent_encode(v, USERINFO).to_string();
    let creds = match password {
        Some(p) => format!("{}:{}", enc(user), enc(p)),
        None => enc(user),
    };
    Ok(format!("{scheme}://{creds}@{}", &rest[host_start..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_login() {
        assert_eq!(
            url_with_login(
                "postgres://postgres@127.0.0.1:5432/ledger",
                "ledger_app_local",
                None
            )
            .unwrap(),
            "postgres://ledger_app_local@127.0.0.1:5432/ledger"
        );
        let url = url_with_login(
            "postgres://owner:s3cret@db:5432/ledger_test_1?sslmode=disable",
            "app",
            Some("p@ss:w/rd"),
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://app:p%40ss%3Aw%2Frd@db:5432/ledger_test_1?sslmode=disable"
        );
        let parsed: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(parsed.get_user(), Some("app"));
        assert_eq!(parsed.get_password(), Some(&b"p@ss:w/rd"[..]));
        assert_eq!(
            url_with_login("postgresql://h/db", "app", None).unwrap(),
            "postgresql://app@h/db"
        );
        assert!(url_with_login("host=h user=u", "app", None).is_err());
        assert_eq!(
            url_login(&url).unwrap(),
            ("app".to_string(), Some("p@ss:w/rd".to_string()))
        );
        assert_eq!(
            url_login("postgres://ledger_app_local@127.0.0.1/ledger").unwrap(),
            ("ledger_app_local".to_string(), None)
        );
    }

    #[test]
    fn login_names() {
        assert!(valid_login("ledger_app_user"));
        assert!(valid_login("ledger_app_local"));
        for bad in [
            "",
            "Ledger",
            "1app",
            "a-b",
            "pg_app",
            "ledger_app",
            "a\"b",
            &"a".repeat(64),
        ] {
            assert!(!valid_login(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_never_print_their_password() {
        let login = AppLogin::from_secret_json(
            r#"{"username":"ledger_app_user","password":"hunter2","engine":"postgres"}"#,
        )
        .unwrap();
        assert_eq!(login.username, "ledger_app_user");
        assert!(!format!("{login:?}").contains("hunter2"));
        assert!(AppLogin::from_secret_json(r#"{"username":"u","password":""}"#).is_err());
        assert!(AppLogin::from_secret_json("{}").is_err());
    }
}
