//! Balance monitors: a condition on an account's posted or available balance that fires once when
//! it becomes true, and again only after it has been false (by at least the hysteresis), unlike
//! an alert on every transaction while it holds. Posting evaluates them under the account's lock
//! after every transaction that changes the account (see `ledger::batch`). Pure.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::events::EventType;

/// Posting evaluates every active monitor of every account it touches: bounded per account.
pub const MAX_MONITORS_PER_ACCOUNT: i64 = 20;

/// Which balance a monitor watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorField {
    /// What entries have posted.
    Posted,
    /// Posted less pending holds: what the account may still spend (before its overdraft).
    Available,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// True while the balance is below the threshold.
    Below,
    /// True while the balance is above the threshold.
    Above,
    /// Fires on every crossing of the threshold, either way.
    Crossing,
}

/// BELOW / ABOVE monitors are CLEAR or TRIGGERED; a CROSSING monitor is on a side of its threshold
/// (ABOVE includes the threshold itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorState {
    Clear,
    Triggered,
    Above,
    Below,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorStatus {
    Active,
    Disabled,
}

macro_rules! spelled {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)+ _ => None }
            }
        }
    };
}
spelled!(MonitorField { Posted => "POSTED", Available => "AVAILABLE" });
spelled!(Condition { Below => "BELOW", Above => "ABOVE", Crossing => "CROSSING" });
spelled!(MonitorState { Clear => "CLEAR", Triggered => "TRIGGERED", Above => "ABOVE", Below => "BELOW" });
spelled!(MonitorStatus { Active => "ACTIVE", Disabled => "DISABLED" });

/// A monitor and its state.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    pub id: Uuid,
    pub client_id: String,
    pub account_id: String,
    pub currency: String,
    pub field: MonitorField,
    pub condition: Condition,
    pub threshold: Decimal,
    /// How far back past the threshold the balance must go before the monitor fires again.
    pub hysteresis: Decimal,
    pub description: Option<String>,
    pub status: MonitorStatus,
    pub state: MonitorState,
    /// The watched balance when the state last changed (or when the monitor was created), and when.
    pub value: Decimal,
    pub evaluated_at: DateTime<Utc>,
    pub triggered_count: i32,
    pub last_triggered_at: Option<DateTime<Utc>>,
    pub last_cleared_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The state a new monitor starts in for the balance `value`, and whether its condition already
/// holds (a BELOW / ABOVE monitor created while true fires at once: it became true for whoever
/// asked to be told). A CROSSING monitor only fires on a later crossing.
pub fn initial_state(
    condition: Condition,
    threshold: Decimal,
    value: Decimal,
) -> (MonitorState, bool) {
    match condition {
        Condition::Below if value < threshold => (MonitorState::Triggered, true),
        Condition::Above if value > threshold => (MonitorState::Triggered, true),
        Condition::Below | Condition::Above => (MonitorState::Clear, false),
        Condition::Crossing if value < threshold => (MonitorState::Below, false),
        Condition::Crossing => (MonitorState::Above, false),
    }
}

impl Monitor {
    /// The watched balance of an account with `posted` and `pending` debits.
    pub fn watched(&self, posted: Decimal, pending: Decimal) -> Decimal {
        match self.field {
            MonitorField::Posted => posted,
            MonitorField::Available => posted - pending,
        }
    }

    /// The state for the balance `value`, from the current state: a change only past the
    /// threshold (to fire) or past the threshold and the hysteresis (to re-arm).
    pub fn next_state(&self, value: Decimal) -> MonitorState {
        let (t, h) = (self.threshold, self.hysteresis);
        use MonitorState::*;
        match (self.condition, self.state) {
            (Condition::Below, Clear) if value < t => Triggered,
            // Saturating: a threshold near Decimal's bounds cannot overflow (money never does).
            (Condition::Below, Triggered) if value >= t.saturating_add(h) => Clear,
            (Condition::Above, Clear) if value > t => Triggered,
            (Condition::Above, Triggered) if value <= t.saturating_sub(h) => Clear,
            (Condition::Crossing, Above) if value < t.saturating_sub(h) => Below,
            (Condition::Crossing, Below) if value >= t.saturating_add(h) => Above,
            (_, state) => state,
        }
    }

    /// Evaluates the monitor against the balance `value` at `at`: when its state changes, records
    /// the change and returns the event to send (a crossing either way is `monitor.triggered`;
    /// its state says which side the balance is now on).
    pub fn evaluate(&mut self, value: Decimal, at: DateTime<Utc>) -> Option<EventType> {
        if self.status != MonitorStatus::Active {
            return None;
        }
        let next = self.next_state(value);
        if next == self.state {
            return None;
        }
        self.state = next;
        self.value = value;
        self.evaluated_at = at;
        if next == MonitorState::Clear {
            self.last_cleared_at = Some(at);
            Some(EventType::MonitorCleared)
        } else {
            self.triggered_count = self.triggered_count.saturating_add(1);
            self.last_triggered_at = Some(at);
            Some(EventType::MonitorTriggered)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn monitor(
        condition: Condition,
        threshold: Decimal,
        hysteresis: Decimal,
        value: Decimal,
    ) -> Monitor {
        let (state, _) = initial_state(condition, threshold, value);
        Monitor {
            id: Uuid::nil(),
            client_id: "c".into(),
            account_id: "a".into(),
            currency: "USD".into(),
            field: MonitorField::Available,
            condition,
            threshold,
            hysteresis,
            description: None,
            status: MonitorStatus::Active,
            state,
            value,
            evaluated_at: DateTime::UNIX_EPOCH,
            triggered_count: 0,
            last_triggered_at: None,
            last_cleared_at: None,
            created_at: DateTime::UNIX_EPOCH,
        }
    }

    fn run(m: &mut Monitor, values: &[Decimal]) -> Vec<Option<EventType>> {
        values
            .iter()
            .map(|v| m.evaluate(*v, DateTime::UNIX_EPOCH))
            .collect()
    }

    const T: Option<EventType> = Some(EventType::MonitorTriggered);
    const C: Option<EventType> = Some(EventType::MonitorCleared);

    #[test]
    fn below_fires_once_per_crossing_not_per_transaction() {
        let mut m = monitor(Condition::Below, d("100"), d("0"), d("500"));
        let got = run(&mut m, &[d("99"), d("50"), d("10"), d("100"), d("99.99")]);
        assert_eq!(got, [T, None, None, C, T]);
        assert_eq!(m.triggered_count, 2);
    }

    #[test]
    fn hysteresis_keeps_a_hovering_balance_quiet() {
        let mut m = monitor(Condition::Below, d("100"), d("20"), d("500"));
        let got = run(
            &mut m,
            &[d("99"), d("101"), d("98"), d("119.99"), d("120"), d("99")],
        );
        assert_eq!(got, [T, None, None, None, C, T]);
    }

    #[test]
    fn above_mirrors_below() {
        let mut m = monitor(Condition::Above, d("1000"), d("100"), d("0"));
        let got = run(
            &mut m,
            &[d("1000"), d("1000.01"), d("950"), d("900"), d("1001")],
        );
        assert_eq!(got, [None, T, None, C, T]);
    }

    #[test]
    fn crossing_fires_both_ways_beyond_the_band() {
        let mut m = monitor(Condition::Crossing, d("0"), d("5"), d("10"));
        assert_eq!(m.state, MonitorState::Above);
        let got = run(
            &mut m,
            &[d("-1"), d("-5.01"), d("0"), d("4.99"), d("5"), d("-6")],
        );
        assert_eq!(got, [None, T, None, None, T, T]);
        assert_eq!(m.state, MonitorState::Below);
    }

    #[test]
    fn a_monitor_created_while_true_fires_at_once() {
        assert_eq!(
            initial_state(Condition::Below, d("10"), d("5")),
            (MonitorState::Triggered, true)
        );
        assert_eq!(
            initial_state(Condition::Above, d("10"), d("10")),
            (MonitorState::Clear, false)
        );
        assert_eq!(
            initial_state(Condition::Crossing, d("10"), d("10")),
            (MonitorState::Above, false)
        );
    }

    #[test]
    fn a_disabled_monitor_never_fires() {
        let mut m = monitor(Condition::Below, d("100"), d("0"), d("500"));
        m.status = MonitorStatus::Disabled;
        assert_eq!(run(&mut m, &[d("1")]), [None]);
    }

    #[test]
    fn the_watched_balance_is_posted_or_available() {
        let mut m = monitor(Condition::Below, d("0"), d("0"), d("0"));
        assert_eq!(m.watched(d("100"), d("30")), d("70"));
        m.field = MonitorField::Posted;
        assert_eq!(m.watched(d("100"), d("30")), d("100"));
    }
}
