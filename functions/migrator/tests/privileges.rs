//! Least privilege against the real PostgreSQL (DESIGN.md section 14, migration V4): what the
//! functions' login may and may not do, the append-only triggers (which bind the owner too), the
//! constraints V4 adds, and the login the migrator creates. That the posting and reconciliation
//! paths work under the app role is shown by the rest of the suite: TestEnv's clients use it.

use std::collections::BTreeSet;

use migrator::migrate_and_ensure_login;
use shared::store::{self, PgPool, roles};
use shared::testkit::{TestEnv, admin_database_url, with_database};

/// Every table no code path updates or deletes, with a column to try an UPDATE on.
const APPEND_ONLY: [(&str, &str); 11] = [
    ("events", "type"),
    ("webhook_attempts", "error"),
    ("ledger_entries", "amount"),
    ("refunds", "amount"),
    ("audit_log", "action"),
    ("transactions", "amount"),
    ("statement_lines", "amount"),
    ("discrepancy_events", "note"),
    ("reconciliation_runs", "report"),
    ("matches", "pairs"),
    ("run_discrepancies", "run_id"),
];
const MUTABLE: [&str; 6] = [
    "accounts",
    "holds",
    "account_balances",
    "statements",
    "discrepancies",
    "dead_letters",
];
/// Tables whose rows may change but are never deleted (a row trigger for DELETE and a TRUNCATE
/// trigger; V5).
const NEVER_DELETED: [&str; 1] = ["dead_letters"];

/// Runs `sql`, which must fail; returns its SQLSTATE and message.
async fn refused(pool: &PgPool, sql: &str) -> (String, String) {
    let conn = pool.get().await.unwrap();
    let err = conn
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql} must be refused"));
    // Leave no aborted transaction behind on the pooled connection.
    let _ = conn.batch_execute("ROLLBACK").await;
    let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: {err}"));
    (db.code().code().to_string(), db.message().to_string())
}

async fn assert_denied(pool: &PgPool, sql: &str) {
    let (code, message) = refused(pool, sql).await;
    assert_eq!(code, "42501", "{sql}: {message}");
    assert!(
        message.starts_with("permission denied") || message.starts_with("must be owner"),
        "{sql}: {message}"
    );
}

async fn exec(pool: &PgPool, sql: &str) {
    let conn = pool.get().await.unwrap();
    conn.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// One row in every append-only table (as the owner).
const SEED: &str = "
    INSERT INTO accounts (id, client_id, currency) VALUES ('a', 'demo', 'USD'), ('b', 'demo', 'USD');
    INSERT INTO account_balances (account_id) VALUES ('a'), ('b');
    INSERT INTO transactions (id, client_id, idempotency_key, request_hash, source_account_id,
        destination_account_id, amount, currency, status, accepted_at, posted_at)
    VALUES ('00000000-0000-7000-8000-000000000001', 'demo', 'k1', 'h', 'a', 'b', 10, 'USD',
        'COMPLETED', now(), now());
    INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, balance_after, posted_at)
    VALUES ('00000000-0000-7000-8000-000000000001', 'a', -10, 'USD', -10, now()),
           ('00000000-0000-7000-8000-000000000001', 'b', 10, 'USD', 10, now());
    INSERT INTO audit_log (client_id, action, entity, entity_id) VALUES ('demo', 'x', 'account', 'a');
    INSERT INTO refunds (refund_id, leg, original_id, original_leg, amount)
    VALUES ('00000000-0000-7000-8000-000000000002', 0, '00000000-0000-7000-8000-000000000001', 0, 1);
    INSERT INTO statements (client_id, account_id, format, content_sha256, lines_imported,
        lines_duplicate, lines_rejected) VALUES ('demo', 'a', 'csv', 'sha', 1, 0, 0);
    INSERT INTO statement_lines (statement_id, account_id, external_id, booked_on, amount, currency)
    SELECT id, 'a', 'e1', '2025-01-01', 10, 'USD' FROM statements;
    INSERT INTO reconciliation_runs (id, client_id, account_id, trigger, window_start, window_end,
        as_of, started_at, finished_at, report)
    VALUES ('00000000-0000-7000-8000-0000000000a1', 'demo', NULL, 'schedule', '2025-01-01',
        '2025-01-01', '2025-01-02', now(), now(), '{}');
    INSERT INTO matches (run_id, chunk, pairs) VALUES ('00000000-0000-7000-8000-0000000000a1', 0, '\\x00');
    INSERT INTO discrepancies (id, client_id, kind, fingerprint, detail, first_seen_run, last_seen_run)
    VALUES ('00000000-0000-7000-8000-0000000000d1', 'demo', 'BALANCE_DRIFT', 'f', 'd',
        '00000000-0000-7000-8000-0000000000a1', '00000000-0000-7000-8000-0000000000a1');
    INSERT INTO run_discrepancies (run_id, discrepancy_id)
    VALUES ('00000000-0000-7000-8000-0000000000a1', '00000000-0000-7000-8000-0000000000d1');
    INSERT INTO discrepancy_events (discrepancy_id, actor, to_status)
    VALUES ('00000000-0000-7000-8000-0000000000d1', 'reconciler', 'OPEN');
    INSERT INTO dead_letters (message_id, body) VALUES ('m1', '{}');
    INSERT INTO events (client_id, type, subject_id, data) VALUES ('demo', 'hold.created', 'h', '{}');
    INSERT INTO webhook_endpoints (id, client_id, url, event_types, status, secret)
    VALUES ('00000000-0000-7000-8000-0000000000e1', 'demo', 'https://hooks.example.com/', '{*}',
        'ENABLED', 'whsec_x');
    INSERT INTO webhook_deliveries (endpoint_id, client_id, event_seq, status, next_attempt_at, give_up_at)
    SELECT '00000000-0000-7000-8000-0000000000e1', 'demo', seq, 'PENDING', now(), now() FROM events;
    INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, duration_ms)
    SELECT id, 1, now(), 500, 3 FROM webhook_deliveries;";

#[tokio::test]
async fn the_functions_connect_as_the_app_login_not_the_owner() {
    let env = TestEnv::new().await;
    let conn = env.clients.db.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT current_user::text, pg_has_role(current_user, 'ledger_app', 'MEMBER'),
                    r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls,
                    (SELECT tableowner::text FROM pg_tables WHERE tablename = 'ledger_entries')
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    let (user, member, privileged, owner): (String, bool, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert!(member, "{user} must be a member of ledger_app");
    assert!(!privileged, "{user} must be an ordinary role");
    assert_ne!(
        user, owner,
        "the functions must not connect as the schema owner"
    );
}

#[tokio::test]
async fn the_app_role_cannot_rewrite_or_erase_the_ledger() {
    let env = TestEnv::new().await;
    exec(&env.admin_db, SEED).await;
    let app = &env.clients.db;
    for (table, column) in APPEND_ONLY {
        assert_denied(app, &format!("TRUNCATE {table}")).await;
        assert_denied(app, &format!("TRUNCATE {table} CASCADE")).await;
        assert_denied(app, &format!("UPDATE {table} SET {column} = {column}")).await;
        assert_denied(app, &format!("DELETE FROM {table}")).await;
    }
    for table in MUTABLE {
        assert_denied(app, &format!("TRUNCATE {table}")).await;
        assert_denied(app, &format!("DELETE FROM {table}")).await;
    }
    // UPDATE is column-level: the identity of a row never changes.
    assert_denied(app, "UPDATE account_balances SET account_id = 'b'").await;
    assert_denied(app, "UPDATE accounts SET overdraft_limit = NULL").await;
    assert_denied(app, "UPDATE statements SET account_id = account_id").await;
    assert_denied(app, "UPDATE discrepancies SET expected = 0").await;
    assert_denied(app, "UPDATE discrepancies SET client_id = 'other'").await;
    assert_denied(app, "UPDATE dead_letters SET body = body").await;
    assert_denied(app, "UPDATE dead_letters SET message_id = message_id").await;
    // Written by the functions, read by none of them.
    assert_denied(app, "SELECT * FROM audit_log").await;
    assert_denied(app, "SELECT * FROM refinery_schema_history").await;
    // What the app may update, it may update.
    exec(
        app,
        "UPDATE account_balances SET balance = balance WHERE account_id = 'a'",
    )
    .await;
    exec(app, "UPDATE discrepancies SET status = 'INVESTIGATING'").await;
    let counted: i64 = env
        .admin_db
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM ledger_entries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(counted, 2, "nothing was erased");
}

#[tokio::test]
async fn the_app_role_cannot_change_the_schema_or_its_own_powers() {
    let env = TestEnv::new().await;
    let app = &env.clients.db;
    for sql in [
        "ALTER TABLE ledger_entries DISABLE TRIGGER ALL",
        "ALTER TABLE transactions DISABLE TRIGGER transactions_append_only",
        "DROP TRIGGER ledger_entries_append_only ON ledger_entries",
        "ALTER TABLE transactions DROP CONSTRAINT transactions_distinct_accounts",
        "DROP INDEX ledger_entries_one_per_leg_side",
        "DROP TABLE audit_log",
        "ALTER TABLE ledger_entries OWNER TO CURRENT_USER",
        "CREATE TABLE shadow (id int)",
        "CREATE TEMP TABLE shadow (id int)",
        "CREATE SCHEMA shadow",
        "CREATE FUNCTION shadow() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
        "SET session_replication_role = replica",
        "SET ROLE postgres",
        "CREATE ROLE shadow",
        "ALTER ROLE CURRENT_USER CREATEROLE",
        "BEGIN; LOCK TABLE ledger_entries IN ACCESS EXCLUSIVE MODE; COMMIT",
    ] {
        assert_denied(app, sql).await;
    }
}

#[tokio::test]
async fn append_only_tables_refuse_changes_from_the_owner_too() {
    let env = TestEnv::new().await;
    exec(&env.admin_db, SEED).await;
    for (table, column) in APPEND_ONLY {
        for (sql, op) in [
            (format!("TRUNCATE {table} CASCADE"), "TRUNCATE"),
            (format!("UPDATE {table} SET {column} = {column}"), "UPDATE"),
            (format!("DELETE FROM {table}"), "DELETE"),
        ] {
            let (_, message) = refused(&env.admin_db, &sql).await;
            assert!(
                message.contains("append-only") && message.contains(op),
                "{sql}: {message}"
            );
        }
    }
    // A table is append-only because nothing updates it, not because a test forgot to: every
    // table with refuse_change triggers is in APPEND_ONLY, with both kinds of trigger.
    let rows = env
        .admin_db
        .get()
        .await
        .unwrap()
        .query(
            "SELECT c.relname::text,
                    bool_or(t.tgtype & 1 = 1 AND t.tgtype & 8 = 8 AND t.tgtype & 16 = 16),
                    bool_or(t.tgtype & 32 = 32)
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE t.tgfoid = 'refuse_change'::regproc AND t.tgenabled = 'O'
               AND NOT c.relname = ANY($1)
             GROUP BY 1",
            &[&NEVER_DELETED.as_slice()],
        )
        .await
        .unwrap();
    // The never-deleted tables: a row trigger for DELETE (not UPDATE) and one for TRUNCATE, which
    // bind the owner too.
    for table in NEVER_DELETED {
        for (sql, op) in [
            (format!("DELETE FROM {table}"), "DELETE"),
            (format!("TRUNCATE {table}"), "TRUNCATE"),
        ] {
            let (code, message) = refused(&env.admin_db, &sql).await;
            assert!(
                code == "42501" && message.contains(op),
                "{sql}: {code} {message}"
            );
        }
    }
    let protected: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            let table: String = r.get(0);
            assert!(
                r.get::<_, bool>(1),
                "{table}: no row trigger for UPDATE OR DELETE"
            );
            assert!(r.get::<_, bool>(2), "{table}: no TRUNCATE trigger");
            table
        })
        .collect();
    let expected: BTreeSet<String> = APPEND_ONLY.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(protected, expected);
}

#[tokio::test]
async fn grants_are_exactly_what_the_functions_run() {
    let env = TestEnv::new().await;
    let conn = env.admin_db.get().await.unwrap();
    let granted = |sql: &'static str| {
        let conn = &conn;
        async move {
            conn.query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<String>>()
        }
    };
    let tables = granted(
        "SELECT c.relname || ' ' || string_agg(a.privilege_type, ',' ORDER BY a.privilege_type)
         FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = 'ledger_app'::regrole
         GROUP BY c.relname ORDER BY c.relname",
    )
    .await;
    assert_eq!(
        tables,
        [
            "account_balances INSERT,SELECT",
            "accounts INSERT,SELECT",
            "audit_log INSERT",
            "audit_log_id_seq USAGE",
            "balance_monitors INSERT,SELECT",
            "dead_letters INSERT,SELECT",
            "discrepancies INSERT,SELECT",
            "discrepancy_events INSERT,SELECT",
            "discrepancy_events_id_seq USAGE",
            "event_cursors SELECT",
            "events INSERT,SELECT",
            "holds INSERT,SELECT",
            "intake_requests DELETE,INSERT,SELECT",
            "ledger_entries INSERT,SELECT",
            "ledger_entries_id_seq USAGE",
            "matches INSERT,SELECT",
            "reconciliation_requests INSERT,SELECT",
            "reconciliation_runs INSERT,SELECT",
            "refunds INSERT,SELECT",
            "run_discrepancies INSERT,SELECT",
            "statement_lines INSERT,SELECT",
            "statement_lines_id_seq USAGE",
            "statements INSERT,SELECT",
            "statements_id_seq USAGE",
            "transactions INSERT,SELECT",
            "webhook_attempts INSERT,SELECT",
            "webhook_deliveries INSERT,SELECT",
            "webhook_endpoints INSERT,SELECT",
        ]
    );
    let columns = granted(
        "SELECT c.relname || ' ' || a.privilege_type || ' '
                || string_agg(att.attname, ',' ORDER BY att.attname)
         FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid, aclexplode(att.attacl) a
         WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = 'ledger_app'::regrole
         GROUP BY c.relname, a.privilege_type ORDER BY 1",
    )
    .await;
    assert_eq!(
        columns,
        [
            "account_balances UPDATE balance,pending,updated_at,version",
            "balance_monitors UPDATE evaluated_at,last_cleared_at,last_triggered_at,state,status,triggered_count,updated_at,value",
            "dead_letters UPDATE posted_at,redrive_deduplication_id,redriven_at,status",
            "discrepancies UPDATE cleared_by_run,detail,last_seen_run,resolution,status,updated_at",
            "event_cursors UPDATE seq,updated_at,xid",
            "holds UPDATE captured,closed_at,status",
            "intake_requests UPDATE outcome_unknown",
            "reconciliation_requests UPDATE attempts,error,finished_at,started_at,status",
            "statements UPDATE lines_duplicate,lines_imported",
            "webhook_deliveries UPDATE attempts,completed_at,last_attempt_at,last_error,last_status_code,leased_until,next_attempt_at,status",
            "webhook_endpoints UPDATE previous_secret,previous_secret_expires_at,secret,status,updated_at",
        ]
    );
    // Every table has had its grants decided: a new one must be added above (V4's rule).
    let all_tables = granted(
        "SELECT relname::text FROM pg_class
         WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1",
    )
    .await;
    let decided: BTreeSet<&str> = tables
        .iter()
        .chain(&columns)
        .map(|t| t.split(' ').next().unwrap())
        .chain(["refinery_schema_history"])
        .collect();
    for t in &all_tables {
        assert!(
            decided.contains(t.as_str()),
            "table {t} has no grants to ledger_app: decide them in its migration (see V4)"
        );
    }
    // Nothing for PUBLIC, and nothing granted to a login directly (only through ledger_app).
    let leaks = granted(
        "SELECT c.relname || ' ' || a.privilege_type || ' to ' || coalesce(r.rolname, 'PUBLIC')
         FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
         WHERE c.relnamespace = 'public'::regnamespace
           AND a.grantee <> c.relowner AND a.grantee <> 'ledger_app'::regrole
         UNION ALL
         SELECT 'schema public ' || a.privilege_type || ' to ' || coalesce(r.rolname, 'PUBLIC')
         FROM pg_namespace n, aclexplode(n.nspacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
         WHERE n.nspname = 'public' AND a.grantee = 0
         UNION ALL
         SELECT 'database ' || a.privilege_type || ' to PUBLIC'
         FROM pg_database d, aclexplode(d.datacl) a
         WHERE d.datname = current_database() AND a.grantee = 0
         UNION ALL
         SELECT 'function ' || p.proname || ' to PUBLIC'
         FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
         WHERE p.pronamespace = 'public'::regnamespace AND a.grantee = 0",
    )
    .await;
    assert!(leaks.is_empty(), "{leaks:#?}");
}

#[tokio::test]
async fn the_new_constraints_refuse_bad_rows() {
    let env = TestEnv::new().await;
    let app = &env.clients.db;
    let insert_tx = |id: &str, src: &str, status: &str, code: Option<&str>| {
        format!(
            "INSERT INTO transactions (id, client_id, idempotency_key, request_hash,
                 source_account_id, destination_account_id, amount, currency, status, failure_code,
                 accepted_at, posted_at)
             VALUES ('{id}', 'demo', '{id}', 'h', '{src}', 'b', 10, 'USD', '{status}', {}, now(), now())",
            code.map_or("NULL".to_string(), |c| format!("'{c}'"))
        )
    };
    let t = |n: u8| format!("00000000-0000-7000-8000-0000000000{n:02x}");
    // A transfer between two accounts, and the record of a same-account request's rejection.
    exec(app, &insert_tx(&t(1), "a", "COMPLETED", None)).await;
    exec(app, &insert_tx(&t(2), "b", "FAILED", Some("same_account"))).await;
    exec(
        app,
        &insert_tx(&t(3), "a", "FAILED", Some("insufficient_funds")),
    )
    .await;
    for sql in [
        insert_tx(&t(4), "b", "COMPLETED", None),
        insert_tx(&t(5), "b", "FAILED", Some("insufficient_funds")),
    ] {
        let (code, message) = refused(app, &sql).await;
        assert_eq!(code, "23514", "{message}");
        assert!(
            message.contains("transactions_distinct_accounts"),
            "{message}"
        );
    }

    let entry = |account: &str, amount: i32, leg: i32| {
        format!(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, balance_after, posted_at, leg)
             VALUES ('{}', '{account}', {amount}, 'USD', 0, now(), {leg})",
            t(1)
        )
    };
    exec(app, &entry("a", -10, 0)).await;
    exec(app, &entry("b", 10, 0)).await;
    // One debit and one credit per leg, whatever the accounts.
    for sql in [entry("a", -3, 0), entry("c", 7, 0)] {
        let (code, message) = refused(app, &sql).await;
        assert_eq!(code, "23505", "{message}");
        assert!(
            message.contains("ledger_entries_one_per_leg_side"),
            "{message}"
        );
    }
    // Another leg may debit the same account again (the card payment's customer pays the merchant,
    // the fee and the tax).
    exec(app, &entry("a", -3, 1)).await;
}

fn unique_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn role_state(pool: &PgPool, login: &str) -> (bool, bool, Option<String>) {
    let row = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT rolcanlogin, pg_has_role(oid, 'ledger_app', 'MEMBER'), rolpassword
             FROM pg_authid WHERE rolname = $1",
            &[&login],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn ensure_app_login_is_idempotent_race_safe_and_refuses_privileged_roles() {
    let env = TestEnv::new().await;
    let login = format!("ledger_app_t{}", unique_suffix());
    // Runners on two databases of the cluster at once (the advisory lock only covers one).
    let other_db = store::pool(&admin_database_url(), 4).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let pool = if i % 2 == 0 {
            env.admin_db.clone()
        } else {
            other_db.clone()
        };
        let login = login.clone();
        tasks.spawn(async move { roles::ensure_app_login(&pool, &login, None).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(role_state(&env.admin_db, &login).await, (true, true, None));

    let password = "s3cret p@ss'word";
    roles::ensure_app_login(&env.admin_db, &login, Some(password))
        .await
        .unwrap();
    let (_, _, stored) = role_state(&env.admin_db, &login).await;
    let stored = stored.unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    roles::ensure_app_login(&env.admin_db, &login, None)
        .await
        .unwrap();
    assert_eq!(
        role_state(&env.admin_db, &login).await.2.as_deref(),
        Some(stored.as_str()),
        "no password given: the password stays"
    );

    // That login has the app's privileges in this database.
    let url = roles::url_with_login(
        &with_database(&admin_database_url(), &env.database_name),
        &login,
        Some(password),
    )
    .unwrap();
    let as_login = store::pool(&url, 1).unwrap();
    exec(&as_login, "SELECT count(*) FROM ledger_entries").await;
    assert_denied(&as_login, "TRUNCATE ledger_entries").await;
    drop(as_login);

    for (name, why) in [
        ("postgres", "privileged"),
        ("ledger_app", "invalid"),
        ("x\"; DROP TABLE accounts; --", "invalid"),
    ] {
        let err = roles::ensure_app_login(&env.admin_db, name, None)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains(why), "{name}: {err:#}");
    }
    exec(&env.admin_db, &format!("DROP ROLE {login}")).await;
}

#[tokio::test]
async fn the_migrator_creates_the_login_from_its_secret_after_migrating() {
    let db = format!("ledger_test_{}", unique_suffix());
    store::ensure_database(&admin_database_url(), &db)
        .await
        .unwrap();
    let owner = store::pool(&with_database(&admin_database_url(), &db), 1).unwrap();
    let login = roles::AppLogin::from_secret_json(&format!(
        r#"{{"username":"ledger_app_m{}","password":"first-password"}}"#,
        unique_suffix()
    ))
    .unwrap();
    let applied = migrate_and_ensure_login(&owner, Some(&login))
        .await
        .unwrap();
    assert!(
        applied.contains(&"V4__least_privilege".to_string()),
        "{applied:?}"
    );
    let (can_login, member, first) = role_state(&owner, &login.username).await;
    assert!(can_login && member);

    // A redeploy after the secret changed (rotation): nothing to migrate, the new password is set.
    let rotated = roles::AppLogin {
        password: "second-password".into(),
        ..login.clone()
    };
    let applied = migrate_and_ensure_login(&owner, Some(&rotated))
        .await
        .unwrap();
    assert!(applied.is_empty());
    let (_, _, second) = role_state(&owner, &login.username).await;
    assert_ne!(first, second);
    exec(&owner, &format!("DROP ROLE {}", login.username)).await;
}
