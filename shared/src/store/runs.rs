//! Reconciliation runs: saving a run with its matches and findings in one transaction (opening,
//! seeing again, reopening and clearing discrepancies), reading a run and its matched pairs.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{PgPool, StoreError, outbox};
use crate::events::{EventType, NewEvent};
use crate::reconcile::discrepancies::{MatchedPair, RunRecord, Scope, StoredRun};
use crate::reconcile::findings::Finding;
use crate::reconcile::report::DiscrepancyChanges;
use crate::reconcile::workflow::DiscrepancyStatus;
use crate::reconcile::{Match, MatchRule};

pub const SYSTEM_ACTOR: &str = "reconciler";

/// Stores a run with its matches and findings in one transaction: new findings open discrepancies,
/// known ones are marked seen (an auto-cleared one that reappears is reopened), and open ones in
/// `scope` that this run no longer sees are closed as cleared by it.
pub async fn save_run(
    pool: &PgPool,
    run: &RunRecord,
    report: &Value,
    matches: &[Match],
    findings: &[Finding],
    scope: &Scope,
) -> Result<DiscrepancyChanges, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.execute(
        "INSERT INTO reconciliation_runs (id, client_id, account_id, trigger, window_start, window_end,
             as_of, started_at, finished_at, report)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &run.id,
            &run.client_id,
            &run.account_id,
            &run.trigger.as_str(),
            &run.window_start,
            &run.window_end,
            &run.as_of,
            &run.started_at,
            &run.finished_at,
            report,
        ],
    )
    .await?;

    if !matches.is_empty() {
        let chunks = pack_matches(matches);
        let numbers: Vec<i32> = (0..chunks.len() as i32).collect();
        tx.execute(
            "INSERT INTO matches (run_id, chunk, pairs) SELECT $1, c.n, c.pairs FROM unnest($2::int4[], $3::bytea[]) AS c(n, pairs)",
            &[&run.id, &numbers, &chunks],
        )
        .await?;
    }

    let mut stats = DiscrepancyChanges::default();
    // (discrepancy, from, to) of every status this run changed, for their events.
    let mut changed: Vec<(Uuid, Option<DiscrepancyStatus>, DiscrepancyStatus)> = Vec::new();
    if !findings.is_empty() {
        let col = |f: fn(&Finding) -> Value| findings.iter().map(f).collect::<Vec<Value>>();
        let ids: Vec<Uuid> = findings.iter().map(|_| Uuid::now_v7()).collect();
        let rows = tx
            .query(
                "WITH input AS (
                     SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                                          $7::date[], $8::int8[], $9::jsonb[], $10::numeric[],
                                          $11::numeric[], $12::text[], $13::text[], $14::jsonb[])
                         AS u(id, client_id, account_id, kind, fingerprint, booked_on, line_id, tx_ids,
                              expected, actual, currency, detail, data)
                 ), before AS (
                     SELECT d.id, d.client_id, d.fingerprint, d.status, d.cleared_by_run
                     FROM discrepancies d JOIN input i USING (client_id, fingerprint)
                 ), upserted AS (
                     INSERT INTO discrepancies (id, client_id, account_id, kind, fingerprint, booked_on,
                         statement_line_id, transaction_ids, expected, actual, currency, detail, data,
                         first_seen_run, last_seen_run)
                     SELECT id, client_id, account_id, kind, fingerprint, booked_on, line_id,
                            ARRAY(SELECT jsonb_array_elements_text(tx_ids))::uuid[],
                            expected, actual, currency, detail, data, $1, $1
                     FROM input
                     ON CONFLICT (client_id, fingerprint) DO UPDATE
                     SET last_seen_run = EXCLUDED.last_seen_run,
                         detail = EXCLUDED.detail,
                         updated_at = now(),
                         status = CASE WHEN discrepancies.cleared_by_run IS NOT NULL
                                            AND discrepancies.status = 'RESOLVED'
                                       THEN 'OPEN' ELSE discrepancies.status END,
                         cleared_by_run = CASE WHEN discrepancies.status = 'RESOLVED'
                                               THEN NULL ELSE discrepancies.cleared_by_run END
                     RETURNING id, client_id, fingerprint, status
                 )
                 SELECT u.id, u.status, b.id IS NULL AS new,
                        (b.cleared_by_run IS NOT NULL AND b.status = 'RESOLVED') AS reopened
                 FROM upserted u LEFT JOIN before b USING (client_id, fingerprint)",
                &[
                    &run.id,
                    &ids,
                    &findings.iter().map(|f| f.client_id.as_str()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.account_id.as_deref()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.fingerprint.as_str()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.booked_on).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.statement_line_id).collect::<Vec<_>>(),
                    &col(|f| json!(f.transaction_ids)),
                    &findings.iter().map(|f| f.expected).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.actual).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.currency.as_deref()).collect::<Vec<_>>(),
                    &findings.iter().map(|f| f.detail.as_str()).collect::<Vec<_>>(),
                    &col(|f| f.data.clone()),
                ],
            )
            .await?;
        let mut event_ids = Vec::new();
        let mut event_from: Vec<Option<&str>> = Vec::new();
        let mut event_note = Vec::new();
        let mut linked = Vec::new();
        for r in &rows {
            let id: Uuid = r.get(0);
            linked.push(id);
            if r.get::<_, bool>(2) {
                stats.new += 1;
                changed.push((id, None, DiscrepancyStatus::Open));
                event_ids.push(id);
                event_from.push(None);
                event_note.push("found by the reconciliation");
            } else if r.get::<_, bool>(3) {
                stats.reopened += 1;
                changed.push((
                    id,
                    Some(DiscrepancyStatus::Resolved),
                    DiscrepancyStatus::Open,
                ));
                event_ids.push(id);
                event_from.push(Some(DiscrepancyStatus::Resolved.as_str()));
                event_note.push("found again after being cleared");
            } else {
                stats.seen_again += 1;
            }
        }
        tx.execute(
            "INSERT INTO run_discrepancies (run_id, discrepancy_id) SELECT $1, unnest($2::uuid[])",
            &[&run.id, &linked],
        )
        .await?;
        if !event_ids.is_empty() {
            tx.execute(
                "INSERT INTO discrepancy_events (discrepancy_id, actor, from_status, to_status, note, action)
                 SELECT u.id, $2, u.from_status, 'OPEN', u.note, jsonb_build_object('run', $1::uuid)
                 FROM unnest($3::uuid[], $4::text[], $5::text[]) AS u(id, from_status, note)",
                &[&run.id, &SYSTEM_ACTOR, &event_ids, &event_from, &event_note],
            )
            .await?;
        }
    }

    // The open discrepancies of the scope this run did not see again are cleared by it.
    let (client, account, from, to, kinds) = match scope {
        Scope::AccountWindow {
            client_id,
            account_id,
            from,
            to,
            kinds,
        } => (
            Some(client_id),
            Some(account_id),
            Some(*from),
            Some(*to),
            kinds,
        ),
        Scope::Kinds(kinds) => (None, None, None, None, kinds),
    };
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let cleared = tx
        .query(
            "WITH cleared AS (
                 SELECT id, status FROM discrepancies
                 WHERE kind = ANY($6) AND status IN ('OPEN', 'INVESTIGATING') AND last_seen_run <> $1
                   AND ($2::text IS NULL OR client_id = $2)
                   AND ($3::text IS NULL OR account_id = $3)
                   AND ($4::date IS NULL OR booked_on IS NULL OR booked_on BETWEEN $4 AND $5)
                 FOR UPDATE
             ), updated AS (
                 UPDATE discrepancies d
                 SET status = 'RESOLVED', cleared_by_run = $1, updated_at = now(),
                     resolution = jsonb_build_object('clearedByRun', $1::uuid)
                 FROM cleared c WHERE d.id = c.id
             )
             INSERT INTO discrepancy_events (discrepancy_id, actor, from_status, to_status, note, action)
             SELECT id, $7, status, 'RESOLVED', 'no longer found: cleared by this run',
                    jsonb_build_object('clearedByRun', $1::uuid)
             FROM cleared RETURNING discrepancy_id, from_status",
            &[&run.id, &client, &account, &from, &to, &kinds, &SYSTEM_ACTOR],
        )
        .await?;
    stats.cleared = cleared.len();
    for r in &cleared {
        let from = DiscrepancyStatus::parse(r.get(1));
        changed.push((r.get(0), from, DiscrepancyStatus::Resolved));
    }
    super::discrepancies::write_events(&tx, &changed).await?;
    // The run's report as the reconcile route answers it (with what it changed to discrepancies).
    let mut object = report.clone();
    if let Some(o) = object.as_object_mut() {
        o.insert("discrepancyChanges".into(), json!(stats));
    }
    let finished = NewEvent {
        client_id: run.client_id.clone(),
        event_type: EventType::ReconciliationFinished,
        subject_id: run.id.to_string(),
        data: object,
    };
    outbox::write(&tx, std::slice::from_ref(&finished)).await?;
    tx.commit().await?;
    Ok(stats)
}

/// The client's own run, or the ledger-wide run (no account); the caller decides who may read the
/// latter (operator tokens only, in the API).
pub async fn get_run(
    pool: &PgPool,
    client_id: &str,
    id: Uuid,
) -> Result<Option<StoredRun>, StoreError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT id, client_id, account_id, report FROM reconciliation_runs
             WHERE id = $1 AND (client_id = $2 OR account_id IS NULL)",
            &[&id, &client_id],
        )
        .await?;
    Ok(row.map(|r| StoredRun {
        id: r.get(0),
        client_id: r.get(1),
        account_id: r.get(2),
        report: r.get(3),
    }))
}

/// A run's matched pairs with their lines' details.
pub async fn run_matches(pool: &PgPool, run_id: Uuid) -> Result<Vec<MatchedPair>, StoreError> {
    let conn = pool.get().await?;
    let chunks = conn
        .query(
            "SELECT pairs FROM matches WHERE run_id = $1 ORDER BY chunk",
            &[&run_id],
        )
        .await?;
    let pairs: Vec<(i64, Uuid, MatchRule)> = chunks
        .iter()
        .flat_map(|r| unpack_matches(r.get::<_, &[u8]>(0)))
        .collect();
    let ids: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let lines: HashMap<i64, (String, NaiveDate, Decimal, String)> = conn
        .query(
            "SELECT id, external_id, booked_on, amount, currency::text FROM statement_lines WHERE id = ANY($1)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
        .collect();
    Ok(pairs
        .into_iter()
        .filter_map(|(line, transaction_id, rule)| {
            let (external_id, booked_on, amount, currency) = lines.get(&line)?.clone();
            Some(MatchedPair {
                statement_line_id: line,
                external_id,
                booked_on,
                amount,
                currency,
                transaction_id,
                rule,
            })
        })
        .collect())
}

const PAIR_BYTES: usize = 25;
const PAIRS_PER_CHUNK: usize = 50_000;

fn rule_code(rule: MatchRule) -> u8 {
    match rule {
        MatchRule::Reference => 1,
        MatchRule::AmountAndDate => 2,
        MatchRule::Batch => 3,
    }
}

/// A run's (line, transaction, rule) pairs in chunks of the packed format `matches` stores.
pub fn pack_matches(matches: &[Match]) -> Vec<Vec<u8>> {
    let pairs = matches.iter().flat_map(|m| {
        m.transaction_ids
            .iter()
            .map(move |t| (m.line_id, *t, m.rule))
    });
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for (n, (line, transaction, rule)) in pairs.enumerate() {
        if n % PAIRS_PER_CHUNK == 0 {
            chunks.push(Vec::with_capacity(PAIRS_PER_CHUNK * PAIR_BYTES));
        }
        let chunk = chunks.last_mut().expect("pushed above");
        chunk.extend_from_slice(&line.to_be_bytes());
        chunk.extend_from_slice(transaction.as_bytes());
        chunk.push(rule_code(rule));
    }
    chunks
}

pub fn unpack_matches(chunk: &[u8]) -> impl Iterator<Item = (i64, Uuid, MatchRule)> + '_ {
    chunk.chunks_exact(PAIR_BYTES).filter_map(|p| {
        let line = i64::from_be_bytes(p[..8].try_into().ok()?);
        let transaction = Uuid::from_slice(&p[8..24]).ok()?;
        let rule = match p[24] {
            1 => MatchRule::Reference,
            2 => MatchRule::AmountAndDate,
            3 => MatchRule::Batch,
            _ => return None,
        };
        Some((line, transaction, rule))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pack_and_unpack() {
        let t = |n: u128| Uuid::from_u128(n);
        let matches = vec![
            Match {
                line_id: 1,
                transaction_ids: vec![t(10)],
                rule: MatchRule::Reference,
            },
            Match {
                line_id: i64::MAX,
                transaction_ids: vec![t(11), t(12)],
                rule: MatchRule::Batch,
            },
            Match {
                line_id: 7,
                transaction_ids: vec![t(13)],
                rule: MatchRule::AmountAndDate,
            },
        ];
        let chunks = pack_matches(&matches);
        assert_eq!(chunks.len(), 1);
        let back: Vec<_> = chunks.iter().flat_map(|c| unpack_matches(c)).collect();
        assert_eq!(
            back,
            [
                (1, t(10), MatchRule::Reference),
                (i64::MAX, t(11), MatchRule::Batch),
                (i64::MAX, t(12), MatchRule::Batch),
                (7, t(13), MatchRule::AmountAndDate)
            ]
        );
        let many: Vec<Match> = (0..120_001)
            .map(|i| Match {
                line_id: i,
                transaction_ids: vec![t(i as u128)],
                rule: MatchRule::Reference,
            })
            .collect();
        let chunks = pack_matches(&many);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [50_000 * 25, 50_000 * 25, 20_001 * 25]
        );
    }
}
