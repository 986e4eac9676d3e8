//! The leaf of posting: decide one transaction against the book and, when it posts, apply it.
//! Every leg of a transaction posts or none does: the legs are decided on a scratch copy of the
//! accounts they touch, which replaces the book's only when the last leg passed.

use rust_decimal::Decimal;
use uuid::Uuid;

use super::book::{Book, HoldStatus, LockedAccount};
use super::{FailureCode, HoldState};
use crate::transfers::{Operation, TransferMessage};

/// One posted leg: the amount that moved and both balances after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    pub leg: u16,
    pub source_account_id: String,
    pub destination_account_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub source_balance_after: Decimal,
    pub destination_balance_after: Decimal,
}

/// What a transaction does to a hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldChange {
    /// A new hold (the transaction's own id) reserving `amount`.
    Placed {
        amount: Decimal,
    },
    Captured {
        hold_id: Uuid,
        amount: Decimal,
    },
    Voided {
        hold_id: Uuid,
        released: Decimal,
    },
}

/// A transaction the ledger accepts, and everything it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    /// The legs that moved money, in order (none for a hold or a void).
    pub postings: Vec<Posting>,
    /// What the transaction row records as its amount: the first leg's (as decided, for a capture
    /// or refund of "what remains"), or what a void released.
    pub amount: Decimal,
    pub hold: Option<HoldChange>,
    /// (this refund's leg, original transaction, original leg, amount) per refunded leg.
    pub refunds: Vec<(u16, Uuid, u16, Decimal)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Post(Decided),
    Reject(FailureCode),
}

/// Decides one transaction against the book and applies it when it posts. Accounts, holds and
/// originals a client did not create are invisible to it (`account_not_found`, `hold_not_found`,
/// `transaction_not_refundable`).
pub fn decide(msg: &TransferMessage, book: &mut Book) -> Decision {
    let mut scratch = Scratch {
        book,
        client: &msg.client_id,
        changed: Vec::new(),
    };
    match scratch.decide(msg) {
        Ok(decided) => {
            let changed = scratch.changed;
            apply(book, msg, &decided, changed);
            Decision::Post(decided)
        }
        Err(code) => Decision::Reject(code),
    }
}

/// Writes a decided transaction's effects into the book, so the next message sees them.
fn apply(
    book: &mut Book,
    msg: &TransferMessage,
    d: &Decided,
    changed: Vec<(String, LockedAccount)>,
) {
    book.accounts.extend(changed);
    match d.hold {
        Some(HoldChange::Placed { amount }) => {
            let t = &msg.transfer;
            let expires_at = match t.operation {
                Operation::Hold { expires_at } => expires_at,
                _ => unreachable!("only a hold places one"),
            };
            book.holds.insert(
                msg.transaction_id,
                HoldState {
                    client_id: msg.client_id.clone(),
                    source_account_id: t.source_account_id.to_string(),
                    destination_account_id: t.destination_account_id.to_string(),
                    currency: t.currency.code().to_string(),
                    amount,
                    captured: Decimal::ZERO,
                    status: HoldStatus::Active,
                    expires_at,
                },
            );
        }
        Some(HoldChange::Captured { hold_id, amount }) => {
            let h = book.holds.get_mut(&hold_id).expect("decided against it");
            h.captured += amount;
            if h.captured == h.amount {
                h.status = HoldStatus::Captured;
            }
        }
        Some(HoldChange::Voided { hold_id, .. }) => {
            book.holds
                .get_mut(&hold_id)
                .expect("decided against it")
                .status = HoldStatus::Voided;
        }
        None => {}
    }
    for (_, of, of_leg, amount) in &d.refunds {
        book.refundable
            .get_mut(&(*of, *of_leg))
            .expect("decided against it")
            .refunded += *amount;
    }
}

/// The accounts one transaction changes, copied from the book when first touched.
struct Scratch<'b> {
    book: &'b Book,
    client: &'b str,
    changed: Vec<(String, LockedAccount)>,
}

impl Scratch<'_> {
    fn decide(&mut self, msg: &TransferMessage) -> Result<Decided, FailureCode> {
        let t = &msg.transfer;
        let (src, dst, cur) = (
            t.source_account_id.as_str(),
            t.destination_account_id.as_str(),
            t.currency.code(),
        );
        let mut decided = Decided {
            postings: Vec::new(),
            amount: t.amount,
            hold: None,
            refunds: Vec::new(),
        };
        match &t.operation {
            Operation::Transfer => {
                for (i, leg) in t.legs().iter().enumerate() {
                    let posting = self.post_leg(
                        i as u16,
                        leg.source_account_id.as_str(),
                        leg.destination_account_id.as_str(),
                        leg.amount,
                        leg.currency.code(),
                    )?;
                    decided.postings.push(posting);
                }
            }
            Operation::Hold { expires_at } => {
                // A hold that expired while queued reserves nothing.
                if *expires_at <= self.book.now {
                    return Err(FailureCode::HoldExpired);
                }
                self.reserve(src, dst, t.amount, cur)?;
                decided.hold = Some(HoldChange::Placed { amount: t.amount });
            }
            Operation::Capture { hold_id, remaining } => {
                let requested = (!*remaining).then_some(t.amount);
                let amount = self
                    .hold(*hold_id, src, dst)?
                    .capture_at(requested, self.book.now)?;
                self.release(src, amount)?;
                decided
                    .postings
                    .push(self.post_leg(0, src, dst, amount, cur)?);
                decided.amount = amount;
                decided.hold = Some(HoldChange::Captured {
                    hold_id: *hold_id,
                    amount,
                });
            }
            Operation::Void { hold_id } => {
                let released = self.hold(*hold_id, src, dst)?.open_at(self.book.now)?;
                self.release(src, released)?;
                decided.amount = released;
                decided.hold = Some(HoldChange::Voided {
                    hold_id: *hold_id,
                    released,
                });
            }
            Operation::Refund {
                of,
                of_legs,
                remaining,
            } => {
                self.refund(t.legs(), *of, of_legs, *remaining, &mut decided)?;
            }
        }
        Ok(decided)
    }

    /// A refund's legs: each bounded by what remains of the original leg it reverses; "what
    /// remains" skips legs with nothing left, and fails only when no leg has anything left.
    fn refund(
        &mut self,
        legs: Vec<crate::transfers::Leg>,
        of: Uuid,
        of_legs: &[u16],
        remaining: bool,
        decided: &mut Decided,
    ) -> Result<(), FailureCode> {
        for (i, (leg, of_leg)) in legs.iter().zip(of_legs).enumerate() {
            // The accounts first, so a refund paid by the leg's own source is `same_account`
            // whatever remains of the leg.
            self.pair(
                leg.source_account_id.as_str(),
                leg.destination_account_id.as_str(),
                leg.currency.code(),
            )?;
            let key = (of, *of_leg);
            let original = self
                .book
                .refundable
                .get(&key)
                .filter(|r| {
                    r.client_id == self.client
                        && r.source_account_id == leg.destination_account_id.as_str()
                        && r.currency == leg.currency.code()
                })
                .ok_or(FailureCode::TransactionNotRefundable)?;
            // Earlier legs of this same refund may reverse the same original leg.
            let earlier: Decimal = decided
                .refunds
                .iter()
                .filter(|(_, o, l, _)| (*o, *l) == key)
                .map(|r| r.3)
                .sum();
            let left = original.amount - original.refunded - earlier;
            let amount = if remaining { left } else { leg.amount };
            if remaining && left <= Decimal::ZERO {
                continue;
            }
            if amount > left {
                return Err(FailureCode::RefundExceedsRemaining);
            }
            let posting = self.post_leg(
                i as u16,
                leg.source_account_id.as_str(),
                leg.destination_account_id.as_str(),
                amount,
                leg.currency.code(),
            )?;
            decided.refunds.push((i as u16, of, *of_leg, amount));
            decided.postings.push(posting);
        }
        match decided.postings.first() {
            Some(first) => {
                decided.amount = first.amount;
                Ok(())
            }
            None => Err(FailureCode::RefundExceedsRemaining),
        }
    }

    /// The hold a capture or void names, if it is this client's and between these accounts.
    fn hold(&self, id: Uuid, src: &str, dst: &str) -> Result<&HoldState, FailureCode> {
        self.book
            .holds
            .get(&id)
            .filter(|h| {
                h.client_id == self.client
                    && h.source_account_id == src
                    && h.destination_account_id == dst
            })
            .ok_or(FailureCode::HoldNotFound)
    }

    /// The account as this transaction sees it so far, if the client owns it.
    fn account(&self, id: &str) -> Option<&LockedAccount> {
        self.changed
            .iter()
            .find(|(a, _)| a == id)
            .map(|(_, a)| a)
            .or_else(|| self.book.accounts.get(id))
            .filter(|a| a.owner_client_id == self.client)
    }

    fn account_mut(&mut self, id: &str) -> &mut LockedAccount {
        let i = match self.changed.iter().position(|(a, _)| a == id) {
            Some(i) => i,
            None => {
                let copy = self.book.accounts[id].clone();
                self.changed.push((id.to_string(), copy));
                self.changed.len() - 1
            }
        };
        &mut self.changed[i].1
    }

    /// Both accounts of a leg, visible to the client and in the leg's currency.
    fn pair(&self, src: &str, dst: &str, currency: &str) -> Result<(), FailureCode> {
        if src == dst {
            return Err(FailureCode::SameAccount);
        }
        let (Some(source), Some(destination)) = (self.account(src), self.account(dst)) else {
            return Err(FailureCode::AccountNotFound);
        };
        if source.currency != currency || destination.currency != currency {
            return Err(FailureCode::CurrencyMismatch);
        }
        Ok(())
    }

    /// Moves `amount` from `src` to `dst` if the source's available balance stays within its limit.
    fn post_leg(
        &mut self,
        leg: u16,
        src: &str,
        dst: &str,
        amount: Decimal,
        currency: &str,
    ) -> Result<Posting, FailureCode> {
        self.pair(src, dst, currency)?;
        let (source, destination) = (
            self.account(src).expect("checked by pair"),
            self.account(dst).expect("checked by pair"),
        );
        let (Some(source_after), Some(destination_after)) = (
            source.balance.checked_sub(amount),
            destination.balance.checked_add(amount),
        ) else {
            return Err(FailureCode::BalanceOverflow);
        };
        let available_after = source_after
            .checked_sub(source.pending)
            .ok_or(FailureCode::BalanceOverflow)?;
        if !source.overdraft_limit.allows(available_after) {
            return Err(FailureCode::InsufficientFunds);
        }
        self.account_mut(src).balance = source_after;
        self.account_mut(dst).balance = destination_after;
        Ok(Posting {
            leg,
            source_account_id: src.to_string(),
            destination_account_id: dst.to_string(),
            amount,
            currency: currency.to_string(),
            source_balance_after: source_after,
            destination_balance_after: destination_after,
        })
    }

    /// Reserves `amount` against `src` if its available balance stays within its limit.
    fn reserve(
        &mut self,
        src: &str,
        dst: &str,
        amount: Decimal,
        currency: &str,
    ) -> Result<(), FailureCode> {
        self.pair(src, dst, currency)?;
        let source = self.account(src).expect("checked by pair");
        let pending = source
            .pending
            .checked_add(amount)
            .ok_or(FailureCode::BalanceOverflow)?;
        let available_after = source
            .balance
            .checked_sub(pending)
            .ok_or(FailureCode::BalanceOverflow)?;
        if !source.overdraft_limit.allows(available_after) {
            return Err(FailureCode::InsufficientFunds);
        }
        self.account_mut(src).pending = pending;
        Ok(())
    }

    /// Releases `amount` of what `src`'s holds reserve.
    fn release(&mut self, src: &str, amount: Decimal) -> Result<(), FailureCode> {
        if self.account(src).is_none() {
            return Err(FailureCode::AccountNotFound);
        }
        let account = self.account_mut(src);
        account.pending -= amount;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
